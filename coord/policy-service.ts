// The bridge between the store and the policy engine: the topology of a network as the engine sees it,
// the gate every policy write passes (parse, tests, compile), and who may use which tag.
import { createHash } from 'node:crypto';
import { checkPolicyOffThread, compileFilters, mayUseTag, parsePolicy, PolicyCheckBusy, PolicyError, runPolicyTests, type Policy, type Topology } from './policy/index.js';
import type { Device, Store, User } from './store/index.js';
import { badRequest, HttpError } from './api/http.js';

/** A new network's policy: Tailscale's default, everyone may reach everything (edit it to restrict). */
export const DEFAULT_POLICY = `// The policy file of this network, in Tailscale's syntax (HuJSON).
// The default lets every device reach every other device, as a new Tailscale network does.
{
  "acls": [
    {"action": "accept", "src": ["*"], "dst": ["*:*"]},
  ],
}
`;

export function etagOf(text: string): string {
  return `"${createHash('sha256').update(text).digest('hex').slice(0, 32)}"`;
}

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
    posture: { 'node:os': d.os, 'node:tsVersion': d.clientVersion },
  };
}

export function topoUserOf(u: User) {
  return { id: u.id, name: u.id, email: u.email, role: u.role };
}

/** Devices that take part in the network's data plane: authorized and not expired. */
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

/** Turns a policy engine error into the API's 400 answer. */
export function policyHttpError(err: unknown): Error {
  if (err instanceof PolicyError) {
    if (err.failures && err.failures.length > 0) {
      return badRequest('test(s) failed', err.failures.map((f) => ({ user: f.src, errors: [f.message] })));
    }
    return badRequest(err.message);
  }
  if (err instanceof PolicyCheckBusy) return new HttpError(503, err.message);
  return err as Error;
}

/**
 * The gate of every policy write: parses (errors with line:column), runs the policy's tests against
 * the network, and compiles it once. Throws a 400 HttpError on any failure.
 */
export function gatePolicy(text: string, topo: Topology): Policy {
  try {
    const policy = parsePolicy(text);
    const failures = runPolicyTests(policy, topo);
    if (failures.length > 0) {
      throw badRequest('test(s) failed', failures.map((f) => ({ user: f.src, errors: [f.message] })));
    }
    compileFilters(policy, topo);
    return policy;
  } catch (err) {
    throw policyHttpError(err);
  }
}

/**
 * Parses and runs the policy's tests (the topology is built only when there are tests). Compiling is
 * left to the caller (the live network compiles it incrementally). Throws a 400 HttpError.
 */
export function checkPolicyText(text: string, topo: () => Topology): Policy {
  try {
    const policy = parsePolicy(text);
    if (policy.tests.length > 0) {
      const failures = runPolicyTests(policy, topo());
      if (failures.length > 0) {
        throw badRequest('test(s) failed', failures.map((f) => ({ user: f.src, errors: [f.message] })));
      }
    }
    return policy;
  } catch (err) {
    throw policyHttpError(err);
  }
}

/**
 * gatePolicy and checkPolicyText off the event loop (a worker thread): what the API uses, so a large
 * policy's tests and compile never stall other requests. Throws a 400 HttpError (503 when busy).
 */
export async function gatePolicyAsync(text: string, topo: Topology): Promise<void> {
  try {
    await checkPolicyOffThread(text, topo, true);
  } catch (err) {
    throw policyHttpError(err);
  }
}

export async function checkPolicyTextAsync(text: string, topo: () => Topology): Promise<Policy> {
  try {
    return await checkPolicyOffThread(text, topo(), false);
  } catch (err) {
    throw policyHttpError(err);
  }
}

/** Parses without tests (for stored policies, which passed the gate when written). */
export function parseStored(text: string): Policy {
  return parsePolicy(text);
}

/**
 * Whether tagOwners lets `user` (or a device already carrying `deviceTags`) apply `tag`: owners may be
 * emails, groups, role autogroups, autogroup:member, or other tags.
 */
export function ownsTag(policy: Policy, user: User | undefined, deviceTags: string[], tag: string): boolean {
  return mayUseTag(policy, { email: user?.email, role: user?.role, tags: deviceTags }, tag);
}

/** Whether the policy defines the tag (in tagOwners); undefined tags can be used by nobody. */
export function tagDefined(policy: Policy, tag: string): boolean {
  return policy.tagOwners.has(tag);
}
