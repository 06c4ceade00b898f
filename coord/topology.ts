// The bridge between the store and the policy engine: a tailnet's devices and users as the engine's
// topology. The tailnet state (tailnet-state.ts) and the policy operations (domain/policy.ts) share it.
import type { Topology } from './policy/index.js';
import { postureOf } from './posture-attributes.js';
import type { Device, Store, User } from './store/index.js';

/** The key of a device in the policy engine's topology is its id; a user's name is their id. */
export function topoNodeOf(d: Device) {
  return {
    hostname: d.name,
    tags: d.tags,
    ipv4: d.ipv4,
    ipv6: d.ipv6,
    user: d.tags.length > 0 ? null : d.userId,
    routable_ips: d.advertisedRoutes,
    approved_routes: d.enabledRoutes,
    posture: postureOf(d),
  };
}

export function topoUserOf(u: User) {
  return { id: u.id, name: u.id, email: u.email, role: u.role };
}

/** Devices that take part in the tailnet's data plane: authorized and not expired. */
export function isActive(d: Device, at = Date.now()): boolean {
  return d.authorized && (d.keyExpiryDisabled || d.expires === null || Date.parse(d.expires) > at);
}

export function topologyOf(store: Store, tailnetId: number): Topology {
  const nodes: Topology['nodes'] = {};
  const users = store.listUsers(tailnetId);
  const activeUsers = new Set(users.filter((u) => u.status === 'active').map((u) => u.id));
  for (const d of store.listDevices(tailnetId)) if (isActive(d) && activeUsers.has(d.userId)) nodes[d.id] = topoNodeOf(d);
  return { users: users.map(topoUserOf), nodes };
}
