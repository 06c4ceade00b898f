// The netmap hub: the live tailnets (live-tailnet.ts) and their open netmap streams. On a change
// (policy, device, users, shares, settings) it works out which devices are affected, recomputes only
// their netmaps, and has each sent only what differs from what it was last sent (a delta), or nothing.
import type { Logger } from 'pino';
import type { RelayInfo, StreamMessage } from '../wire/protocol.js';
import { LiveTailnet, type ExtDevice, type SharedIn, type StreamSink } from './live-tailnet.js';
import { parsePolicy, type Policy, type SharedUser } from './policy/index.js';
import { attributeExpiredBetween } from './posture-attributes.js';
import { excludedOf, sameExcluded } from './sharing.js';
import type { Device, Store, Tailnet, User } from './store/index.js';
import { isActive, topoUserOf } from './topology.js';

export type { StreamSink } from './live-tailnet.js';

/**
 * How often every stream gets a keepalive line. Besides telling the agent coord is alive, each one is
 * data the device's TCP stack must acknowledge: with TCP_USER_TIMEOUT on the stream (api/machine.ts)
 * a device that stopped acknowledging is dropped within this interval plus that timeout.
 */
export const DEFAULT_KEEPALIVE_MS = 15_000;

function hasVia(p: Policy): boolean {
  return p.grants.some((g) => g.via.length > 0);
}

/** What the hub reports to coord's metrics (coord/metrics.ts), in milliseconds. */
export interface HubObserver {
  policyCompiled(ms: number): void;
  /** From a policy change reaching the hub to the last affected device's netmap written to its stream. */
  policyFannedOut(ms: number): void;
}

export class NetmapHub {
  private readonly tailnets = new Map<number, LiveTailnet>();
  private keepaliveTimer: NodeJS.Timeout | undefined;
  /** When the last upkeep sweep ran (ms). */
  private lastSweep = Date.now();
  private lastVersion = 0;
  observer: HubObserver | null = null;
  private relaysText = '';
  private stunPortsText = '';
  /** Per streaming device (by id): its node key and the node keys of the peers its netmap lists. */
  private readonly sentKeys = new Map<string, { key: string; peers: Set<string> }>();
  /** Node key → the streaming device holding it (the reverse of sentKeys). */
  private readonly deviceOfKey = new Map<string, string>();
  /** Called after changes that may take a device's right to connect away (removal, expiry, users, policy). */
  onAccessChanged: (() => void) | undefined;

  constructor(private readonly store: Store, readonly log: Logger, readonly keepaliveMs = DEFAULT_KEEPALIVE_MS) {
    if (keepaliveMs > 0) {
      this.keepaliveTimer = setInterval(() => this.keepalive(), keepaliveMs);
      this.keepaliveTimer.unref();
    }
  }

  private live(tailnetId: number): LiveTailnet {
    let n = this.tailnets.get(tailnetId);
    if (!n) {
      const t = this.store.getTailnet(tailnetId);
      if (!t) throw new Error(`network ${tailnetId} not found`);
      let policy: Policy;
      try {
        policy = parsePolicy(t.policy);
      } catch (err) {
        // A stored policy that this version no longer accepts: deny everything rather than guess.
        this.log.error({ tailnet: t.name, err: (err as Error).message }, 'stored policy does not parse; the network denies all traffic until a valid policy is set');
        policy = parsePolicy('{}');
      }
      n = new LiveTailnet(this.store, t, policy, {
        isOnline: (tid, id) => this.isOnline(tid, id),
        nextVersion: () => this.nextVersion(),
        relaysJson: () => this.relaysText,
        stunPortsJson: () => this.stunPortsText,
        peersSent: (id, key, peers) => this.peersSent(id, key, peers),
      });
      this.tailnets.set(tailnetId, n);
      this.loadSharing(n, false);
    }
    return n;
  }

  /** The relay map every netmap carries; devices with a stream get it at once. */
  setRelays(relays: RelayInfo[]): void {
    const text = relays.length === 0 ? '' : JSON.stringify(relays);
    if (text === this.relaysText) return;
    this.relaysText = text;
    for (const n of this.tailnets.values()) for (const id of n.streams.keys()) n.push(id);
  }

  /** coord's STUN ports (at the host of coord's URL), which every netmap carries; [] when STUN is off. */
  setStunPorts(ports: number[]): void {
    const text = ports.length === 0 ? '' : JSON.stringify(ports);
    if (text === this.stunPortsText) return;
    this.stunPortsText = text;
    for (const n of this.tailnets.values()) for (const id of n.streams.keys()) n.push(id);
  }

  private peersSent(deviceId: string, key: string, peers: string[] | null): void {
    const old = this.sentKeys.get(deviceId);
    if (old && this.deviceOfKey.get(old.key) === deviceId) this.deviceOfKey.delete(old.key);
    if (peers === null) {
      this.sentKeys.delete(deviceId);
      return;
    }
    this.sentKeys.set(deviceId, { key, peers: new Set(peers) });
    this.deviceOfKey.set(key, deviceId);
  }

  /**
   * Whether the devices with these node keys are peers: one of them was last sent a netmap that lists
   * the other (the relay's rule for forwarding). Answers from memory; false for a key no stream holds.
   */
  arePeers(a: string, b: string): boolean {
    const da = this.deviceOfKey.get(a);
    if (da !== undefined && this.sentKeys.get(da)?.peers.has(b)) return true;
    const db = this.deviceOfKey.get(b);
    return db !== undefined && this.sentKeys.get(db)?.peers.has(a) === true;
  }

  /** The node keys the device holding `key` was last sent as peers (empty when no stream holds the key). */
  peersOf(key: string): string[] {
    const d = this.deviceOfKey.get(key);
    const sent = d === undefined ? undefined : this.sentKeys.get(d);
    return sent ? [...sent.peers] : [];
  }

  /** Monotonic across restarts: milliseconds since the epoch, bumped when called twice in one ms. */
  private nextVersion(): number {
    this.lastVersion = Math.max(this.lastVersion + 1, Date.now());
    return this.lastVersion;
  }

  // ── sharing ────────────────────────────────────────────────────────

  /** Shares were created or removed: the tailnets on both sides re-read theirs and update their devices. */
  sharingChanged(tailnetIds: Iterable<number>): void {
    for (const id of new Set(tailnetIds)) {
      const n = this.tailnets.get(id);
      if (n) this.loadSharing(n, true); // a tailnet not loaded yet reads its shares when it loads
    }
  }

  /** Reads the tailnet's shares (both sides) from the store into its compiler and netmaps. */
  private loadSharing(n: LiveTailnet, push: boolean): void {
    const { store } = this;
    const tid = n.tailnet.id;
    const partners = new Set<number>();
    const changed = new Set<string>();
    const activeDevicesOf = (u: User) => store.listDevices(u.tailnetId).filter((d) => d.userId === u.id && isActive(d));

    // Sharer side: recipients become shared users of the compiler; their devices may visit.
    const byRecipient = new Map<string, { user: User; tailnet: Tailnet; devices: Device[]; nodes: string[] }>();
    for (const sh of store.sharesFrom(tid)) {
      partners.add(sh.recipientTailnetId);
      const u = store.getUser(sh.recipientId);
      const t = store.getTailnet(sh.recipientTailnetId);
      const shared = n.devices.get(sh.deviceId);
      // A device that is not live at home (its owner suspended, it expired) is shared with nobody.
      if (!u || !t || u.status !== 'active' || !shared || !n.shouldBeLive(shared)) continue;
      let e = byRecipient.get(u.id);
      if (!e) byRecipient.set(u.id, (e = { user: u, tailnet: t, devices: activeDevicesOf(u), nodes: [] }));
      e.nodes.push(sh.deviceId);
    }
    const sharedUsers: SharedUser[] = [];
    const visitors = new Map<string, ExtDevice[]>();
    for (const e of byRecipient.values()) {
      sharedUsers.push({ email: e.user.email, name: e.user.id, addrs: e.devices.flatMap((d) => [d.ipv4, d.ipv6]), sharedNodes: e.nodes });
      for (const node of e.nodes) {
        let list = visitors.get(node);
        if (!list) visitors.set(node, (list = []));
        for (const d of e.devices) list.push({ device: d, tailnet: e.tailnet, user: e.user });
      }
    }
    const text = JSON.stringify(sharedUsers);
    if (text !== n.sharedUsersText) {
      n.sharedUsersText = text;
      for (const id of n.compiler.setSharedUsers(sharedUsers)) changed.add(id);
    }
    n.visitors = visitors;

    // Recipient side: shared-in devices become nodes of this tailnet's compiler (as destinations of its
    // policy), peers of their recipients' devices, and are carved out of every source.
    const sharedIn = new Map<string, SharedIn>();
    const recipients = new Set<string>();
    for (const sh of store.sharesInto(tid)) {
      partners.add(sh.tailnetId);
      const d = store.getDevice(sh.deviceId);
      const t = store.getTailnet(sh.tailnetId);
      const r = n.users.get(sh.recipientId);
      // Only while the device is live in its own network: authorized, not expired, its owner active.
      if (!d || !t || !isActive(d) || store.getUser(d.userId)?.status !== 'active' || !r || r.status !== 'active') continue;
      recipients.add(r.id);
      let e = sharedIn.get(d.id);
      if (!e) sharedIn.set(d.id, (e = { device: d, tailnet: t, user: store.getUser(sh.sharerId), recipients: new Set() }));
      e.recipients.add(r.id);
    }
    for (const id of n.sharedIn.keys()) if (!sharedIn.has(id)) for (const c of n.compiler.removeNode(id)) changed.add(c);
    for (const [id, e] of sharedIn) {
      const old = n.sharedIn.get(id);
      if (old && old.device.ipv4 === e.device.ipv4 && old.device.ipv6 === e.device.ipv6 && old.device.name === e.device.name) continue;
      const d = e.device;
      for (const c of n.compiler.setNode(id, { hostname: d.name, tags: [], ipv4: d.ipv4, ipv6: d.ipv6, user: null })) changed.add(c);
    }
    n.sharedIn = sharedIn;
    n.recipients = recipients;
    const excluded = excludedOf([...sharedIn.values()].flatMap((e) => [e.device.ipv4, e.device.ipv6]));
    if (!sameExcluded(excluded, n.excluded)) {
      n.excluded = excluded;
      n.carved = new Map();
    }
    n.partners = partners;
    n.applyFilters(changed);
    if (push) for (const id of n.streams.keys()) n.push(id);
  }

  /** Whether a change of this device matters to other tailnets through a share. */
  private touchesSharing(n: LiveTailnet, deviceId: string, userIds: (string | undefined)[]): boolean {
    if (n.partners.size === 0) return false;
    if (n.visitors.has(deviceId)) return true;
    for (const sh of this.store.sharesFrom(n.tailnet.id)) if (sh.deviceId === deviceId) return true;
    return userIds.some((u) => u !== undefined && n.recipients.has(u));
  }

  /** The tailnet's current policy (parsed once, kept with the live tailnet). */
  policyOf(tailnetId: number): Policy {
    return this.live(tailnetId).policy;
  }

  /** Opens a device's stream: it gets its full netmap at once. Returns the function that closes it. */
  subscribe(device: Device, sink: StreamSink): () => void {
    const n = this.live(device.tailnetId);
    let sinks = n.streams.get(device.id);
    const wasOnline = (sinks?.size ?? 0) > 0;
    if (!sinks) n.streams.set(device.id, (sinks = new Set()));
    sinks.add(sink);
    if (!wasOnline) n.setPresence(device.id, true);
    n.push(device.id, true);
    if (!wasOnline) this.presenceChanged(n, device.id);
    return () => {
      if (!sinks!.delete(sink)) return;
      if (sinks!.size === 0) {
        n.streams.delete(device.id);
        n.setPresence(device.id, false);
        n.forget(device.id);
        const d = this.store.getDevice(device.id);
        if (d) {
          n.devices.set(d.id, this.store.updateDevice(d.id, { lastSeen: new Date().toISOString() }));
          this.presenceChanged(n, device.id);
        }
      }
    };
  }

  /** Open netmap streams (a device may hold more than one for a moment while it reconnects). */
  openStreams(): number {
    let count = 0;
    for (const n of this.tailnets.values()) for (const sinks of n.streams.values()) count += sinks.size;
    return count;
  }

  isOnline(tailnetId: number, deviceId: string): boolean {
    return (this.tailnets.get(tailnetId)?.streams.get(deviceId)?.size ?? 0) > 0;
  }

  private presenceChanged(n: LiveTailnet, id: string): void {
    n.peerJson.delete(id);
    // Its viewers include every device that may use its routes: their route plans follow (failover).
    for (const p of [...n.viewersOf(id)]) n.push(p);
    if (n.partners.size > 0 && this.touchesSharing(n, id, [n.devices.get(id)?.userId])) {
      for (const t of n.partners) {
        const pn = this.tailnets.get(t);
        if (pn) for (const s of pn.streams.keys()) pn.push(s);
      }
    }
  }

  /**
   * `via` grants steer devices without always changing a filter (a grant naming routers that serve
   * nothing yet still takes the prefix from the others): the devices listing a router re-plan.
   */
  private pushRouterViewers(n: LiveTailnet): void {
    const viewers = new Set<string>();
    for (const [id, d] of n.devices) if (d.enabledRoutes.length > 0) for (const v of n.viewersOf(id)) viewers.add(v);
    for (const v of viewers) n.push(v);
  }

  /** The policy changed (already stored). */
  policyChanged(tailnetId: number, policy: Policy): void {
    const n = this.tailnets.get(tailnetId);
    if (!n) return;
    const steered = hasVia(n.policy) || hasVia(policy);
    n.policy = policy;
    const t0 = performance.now();
    const changed = n.compiler.setPolicy(policy);
    this.observer?.policyCompiled(performance.now() - t0);
    this.settle(n, n.applyFilters(changed));
    if (steered) this.pushRouterViewers(n);
    this.observer?.policyFannedOut(performance.now() - t0);
    this.onAccessChanged?.();
  }

  /**
   * Compiles a new policy into the live tailnet without telling any device yet. The caller stores the
   * policy, then calls commit() (devices get their netmaps), or rollback() if storing failed. Throws
   * (and changes nothing) when the policy does not compile.
   */
  preparePolicy(tailnetId: number, policy: Policy): { commit(): void; rollback(): void } {
    const n = this.live(tailnetId);
    const old = n.policy;
    const t0 = performance.now();
    const changed = n.compiler.setPolicy(policy);
    this.observer?.policyCompiled(performance.now() - t0);
    n.policy = policy;
    return {
      commit: () => {
        this.settle(n, n.applyFilters(changed));
        if (hasVia(old) || hasVia(policy)) this.pushRouterViewers(n);
        this.observer?.policyFannedOut(performance.now() - t0);
        this.onAccessChanged?.();
      },
      rollback: () => {
        n.compiler.setPolicy(old);
        n.policy = old;
      },
    };
  }

  /** A device was created, changed (tags, routes, key, authorization, name, endpoints) or deleted. */
  deviceChanged(tailnetId: number, deviceId: string): void {
    this.onAccessChanged?.();
    const n = this.tailnets.get(tailnetId);
    if (!n) return;
    const after = this.store.getDevice(deviceId);
    const sharing = this.touchesSharing(n, deviceId, [n.devices.get(deviceId)?.userId, after?.userId]);
    n.peerJson.delete(deviceId);
    n.selfJson.delete(deviceId);
    n.routerChanged(deviceId);
    if (after) n.devices.set(deviceId, after);
    else n.devices.delete(deviceId);
    const changed = n.reconcile(deviceId);
    const affected = new Set<string>([deviceId, ...n.viewersOf(deviceId)]);
    if (after) for (const p of n.peersOf(deviceId)) affected.add(p);
    this.settle(n, changed, affected);
    if (!after) {
      const sinks = n.streams.get(deviceId);
      if (sinks) {
        const line = JSON.stringify({ type: 'logout', message: 'device was removed' } satisfies StreamMessage) + '\n';
        for (const s of sinks) { s.write(line); s.end(); }
        n.streams.delete(deviceId);
      }
      n.forget(deviceId);
      n.shownIn.delete(deviceId);
    }
    if (sharing) this.sharingChanged([tailnetId, ...n.partners]);
  }

  /** Users changed (role, deletion, new user): role autogroups and owners may change filters. */
  usersChanged(tailnetId: number): void {
    this.onAccessChanged?.();
    const n = this.tailnets.get(tailnetId);
    if (!n) return;
    n.users.clear();
    for (const u of this.store.listUsers(tailnetId)) n.users.set(u.id, u);
    n.invalidateAll();
    const changed = new Set(n.applyFilters(n.compiler.setUsers([...n.users.values()].map(topoUserOf))));
    // A suspended or deleted user's devices leave the tailnet; a restored user's come back.
    for (const d of this.store.listDevices(tailnetId)) n.devices.set(d.id, d);
    for (const id of [...n.devices.keys()]) {
      if (!this.store.getDevice(id)) n.devices.delete(id);
      for (const c of n.reconcile(id)) changed.add(c);
    }
    this.settle(n, changed, new Set(n.streams.keys()));
    // A recipient or sharer suspended, restored or deleted: the shares on both sides follow.
    if (n.partners.size > 0 || this.store.sharesInto(tailnetId).length > 0) this.sharingChanged([tailnetId, ...n.partners]);
  }

  /** Tailnet settings or DNS changed: every device's netmap may differ. */
  tailnetChanged(tailnetId: number): void {
    const n = this.tailnets.get(tailnetId);
    if (!n) return;
    n.tailnet = this.store.getTailnet(tailnetId)!;
    n.invalidateAll();
    for (const id of n.streams.keys()) n.push(id);
  }

  /**
   * After the compiler reported `changed` nodes (their filters differ): those nodes, and every node
   * that was or now is their peer, may have a different netmap. Push to the ones with a stream.
   */
  private settle(n: LiveTailnet, changed: Iterable<string>, affected: Set<string> = new Set()): void {
    const ids = [...changed];
    // When most of the tailnet changed, every streaming device is affected: skip working out which.
    if (ids.length >= n.streams.size / 2) {
      for (const id of n.streams.keys()) n.push(id);
      return;
    }
    const memo = new Map<string, string[]>();
    // A shared-in device's rules changed: its recipients' devices get new sharedPeerRules (and maybe it as a peer).
    if (n.sharedIn.size > 0 && ids.some((id) => n.sharedIn.has(id))) {
      for (const id of n.streams.keys()) if (n.recipients.has(n.devices.get(id)?.userId ?? '')) affected.add(id);
    }
    for (const id of ids) {
      affected.add(id);
      for (const p of n.viewersOf(id)) affected.add(p);
      const peers = n.peersOf(id);
      memo.set(id, peers);
      for (const p of peers) affected.add(p);
    }
    for (const id of affected) n.push(id, false, memo.get(id));
  }

  /**
   * Periodic upkeep: devices whose node key expired since the last sweep leave their peers' netmaps.
   * Returns the ids of ephemeral devices offline for longer than `ephemeralGraceMs` (the caller deletes them).
   */
  sweep(ephemeralGraceMs = 10 * 60_000): { tailnetId: number; deviceId: string }[] {
    const stale: { tailnetId: number; deviceId: string }[] = [];
    const now = Date.now();
    const since = this.lastSweep;
    this.lastSweep = now;
    for (const [tailnetId, n] of this.tailnets) {
      for (const [id, d] of n.devices) {
        // A custom posture attribute that expired since the last sweep changes what srcPosture lets through.
        if (n.isLive(id) !== n.shouldBeLive(d) || attributeExpiredBetween(d, since, now)) this.deviceChanged(tailnetId, id);
        const offline = (n.streams.get(id)?.size ?? 0) === 0;
        if (d.ephemeral && offline && now - Date.parse(d.lastSeen ?? d.created) > ephemeralGraceMs) stale.push({ tailnetId, deviceId: id });
      }
    }
    return stale;
  }

  private keepalive(): void {
    const line = '{"type":"keepalive"}\n';
    for (const n of this.tailnets.values()) for (const sinks of n.streams.values()) for (const s of sinks) s.write(line);
  }

  /** Ends every stream (shutdown). */
  close(): void {
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    for (const n of this.tailnets.values()) {
      for (const sinks of n.streams.values()) for (const s of sinks) s.end();
      n.streams.clear();
    }
  }
}
