// The netmap hub: per tailnet, the compiled policy (incremental), the devices, and the open netmap
// streams. On a change it works out which devices are affected, recomputes only their netmaps, and
// sends each of them only what differs from what it was last sent (a delta), or nothing.
import type { Logger } from 'pino';
import type { DnsConfig, PeerNode, StreamMessage, UserRef } from '../wire/protocol.js';
import type { FilterRule } from '../wire/types.js';
import { PeerIndex } from './peers.js';
import { parsePolicy, PolicyCompiler, type Policy, type SharedUser } from './policy/index.js';
import { isActive, topoNodeOf, topoUserOf } from './topology.js';
import { carveSources, excludedOf, rulesBetween, sameExcluded, sourcesContain, type Excluded } from './sharing.js';
import { fqdn, type Device, type Store, type Tailnet, type User } from './store/index.js';

/** Where a device's stream lines go: the HTTP response holding its netmap stream. */
export interface StreamSink {
  write(line: string): void;
  end(): void;
}

interface Sent {
  self: string;
  filter: string;
  /** sharedPeerRules as JSON, '' when the device receives no shares. */
  shared: string;
  dns: string;
  /** The peers as sent: ids and their JSON, in the same order. */
  peerIds: string[];
  peerTexts: string[];
}

function userRef(u: User | undefined): UserRef {
  return u ? { id: u.id, loginName: u.email, displayName: u.displayName } : { id: '', loginName: '', displayName: '' };
}

/** A device of another tailnet that this tailnet's netmaps show (sharing, issue 7). */
interface ExtDevice {
  device: Device;
  tailnet: Tailnet;
  /** Sharer side: the recipient (the device's owner). Recipient side: the sharer, shown as the owner. */
  user: User | undefined;
}

/** Recipient side: a device of another tailnet shared with some users of this one. */
interface SharedIn extends ExtDevice {
  recipients: Set<string>;
}

class LiveTailnet {
  tailnet: Tailnet;
  /** Sharer side: per shared device of this tailnet, the recipients' devices that may reach it. */
  visitors = new Map<string, ExtDevice[]>();
  sharedUsersText = '[]';
  /** Recipient side: devices of other tailnets shared into this one, by id (also nodes of `compiler`). */
  sharedIn = new Map<string, SharedIn>();
  /** Users of this tailnet who received a share. */
  recipients = new Set<string>();
  /** Tailnets this one shares with or receives from. */
  partners = new Set<number>();
  /** Addresses of shared-in devices: never in the sources of this tailnet's rules. */
  excluded: Excluded = excludedOf([]);
  /** SrcIPs entry → the same without `excluded` (reset when `excluded` changes). */
  carved = new Map<string, string[]>();
  compiler: PolicyCompiler;
  readonly peerIndex = new PeerIndex();
  readonly devices = new Map<string, Device>();
  readonly users = new Map<string, User>();
  readonly streams = new Map<string, Set<StreamSink>>();
  /** What each streaming device was last sent, part by part (JSON texts), to send only what changed. */
  readonly lastSent = new Map<string, Sent>();
  /** Devices the compiler knows (authorized, not expired, owner active), with the node they were given as. */
  readonly live = new Map<string, string>();
  /** Peer JSON per device, as other devices see it; dropped when the device changes. */
  readonly peerJson = new Map<string, string>();
  /** The peers listed in the last netmap each device was sent, and the reverse: who lists a device. */
  readonly sentPeers = new Map<string, string[]>();
  readonly shownIn = new Map<string, Set<string>>();

  constructor(
    readonly store: Store,
    tailnet: Tailnet,
    public policy: Policy,
    private readonly hub: {
      /** Whether a device (of any tailnet) has a netmap stream open. */
      isOnline(tailnetId: number, id: string): boolean;
      /** The version of the next netmap or delta sent (the hub's counter, shared by its tailnets). */
      nextVersion(): number;
    },
  ) {
    this.tailnet = tailnet;
    for (const u of store.listUsers(tailnet.id)) this.users.set(u.id, u);
    const nodes: Record<string, ReturnType<typeof topoNodeOf>> = {};
    for (const d of store.listDevices(tailnet.id)) {
      this.devices.set(d.id, d);
      if (this.shouldBeLive(d)) {
        nodes[d.id] = topoNodeOf(d);
        this.live.set(d.id, JSON.stringify(nodes[d.id]));
      }
    }
    this.compiler = new PolicyCompiler(policy, { users: [...this.users.values()].map(topoUserOf), nodes });
    for (const id of this.live.keys()) {
      const d = this.devices.get(id)!;
      this.peerIndex.addDevice(id, d.ipv4, d.ipv6);
    }
    this.applyFilters(this.live.keys());
  }

  /** Feeds the compiler's new filters of these nodes to the peer index; returns the ids. */
  applyFilters(changed: Iterable<string>): string[] {
    const ids = [...changed];
    for (const id of ids) if (this.live.has(id)) this.peerIndex.setFilter(id, this.compiler.filterFor(id));
    return ids;
  }

  shouldBeLive(d: Device): boolean {
    return isActive(d) && this.users.get(d.userId)?.status === 'active';
  }

  /** Brings the compiler in line with the device's current state; returns the nodes whose filter changed. */
  reconcile(id: string): Iterable<string> {
    const d = this.devices.get(id);
    if (d && this.shouldBeLive(d)) {
      const node = topoNodeOf(d);
      const text = JSON.stringify(node);
      if (this.live.get(id) === text) return [];
      const wasLive = this.live.has(id);
      this.live.set(id, text);
      const changed = [...this.compiler.setNode(id, node), id];
      if (!wasLive) this.peerIndex.addDevice(id, d.ipv4, d.ipv6);
      return this.applyFilters(changed);
    }
    if (!this.live.has(id)) return [];
    this.live.delete(id);
    const changed = [...this.compiler.removeNode(id)];
    this.peerIndex.removeDevice(id);
    return this.applyFilters(changed);
  }

  isLive(id: string): boolean {
    return this.live.has(id);
  }

  peersOf(id: string): string[] {
    return this.live.has(id) ? this.peerIndex.peersOf(id) : [];
  }

  /** Devices whose current netmap lists `id` as a peer. */
  viewersOf(id: string): Iterable<string> {
    return this.shownIn.get(id) ?? [];
  }

  private recordPeers(id: string, peers: string[]): void {
    const before = this.sentPeers.get(id);
    if (before && before.length === peers.length && before.every((p, i) => p === peers[i])) return;
    for (const p of before ?? []) this.shownIn.get(p)?.delete(id);
    for (const p of peers) {
      let s = this.shownIn.get(p);
      if (!s) this.shownIn.set(p, (s = new Set()));
      s.add(id);
    }
    this.sentPeers.set(id, peers);
  }

  forget(id: string): void {
    this.recordPeers(id, []);
    this.sentPeers.delete(id);
    this.lastSent.delete(id);
  }

  peerEntry(d: Device): string {
    let s = this.peerJson.get(d.id);
    if (s === undefined) {
      const addresses = [`${d.ipv4}/32`, `${d.ipv6}/128`];
      const p: PeerNode = {
        id: d.id,
        name: fqdn(d, this.tailnet),
        addresses,
        nodeKey: d.nodeKey,
        endpoints: d.endpoints,
        allowedIPs: [...addresses, ...d.enabledRoutes],
        user: userRef(this.users.get(d.userId)),
        tags: d.tags,
        os: d.os,
        online: (this.streams.get(d.id)?.size ?? 0) > 0,
        lastSeen: d.lastSeen,
        shared: false,
        quarantined: false,
      };
      s = JSON.stringify(p);
      this.peerJson.set(d.id, s);
    }
    return s;
  }

  /** The tailnet's DNS settings as JSON (cached until the tailnet changes). */
  private dnsText: string | undefined;
  dnsJson(): string {
    if (this.dnsText === undefined) {
      const dns: DnsConfig = {
        domain: this.tailnet.domain,
        magicDNS: this.tailnet.dns.magicDNS !== false,
        nameservers: (this.tailnet.dns.nameservers as string[] | undefined) ?? [],
        searchPaths: (this.tailnet.dns.searchPaths as string[] | undefined) ?? [],
      };
      // Split DNS (the admin API checks the shape when it is written).
      const split = this.tailnet.dns.splitDns as Record<string, string[]> | undefined;
      if (split && Object.keys(split).length > 0) dns.routes = split;
      this.dnsText = JSON.stringify(dns);
    }
    return this.dnsText;
  }

  /** Drops every cached JSON piece (tailnet, users or DNS changed). */
  invalidateAll(): void {
    this.peerJson.clear();
    this.selfJson.clear();
    this.dnsText = undefined;
  }

  /** A device's `self` as JSON, cached until the device changes. */
  readonly selfJson = new Map<string, string>();
  selfEntry(d: Device): string {
    let s = this.selfJson.get(d.id);
    if (s === undefined) {
      s = JSON.stringify(this.selfOf(d));
      this.selfJson.set(d.id, s);
    }
    return s;
  }

  /** The peers a device's netmap lists now. */
  currentPeers(d: Device, peerIds?: string[]): string[] {
    if (!this.isLive(d.id)) return [];
    const out: string[] = [];
    for (const id of peerIds ?? this.peersOf(d.id)) if (id !== d.id && this.isLive(id) && this.devices.has(id)) out.push(id);
    return out;
  }

  private selfOf(d: Device) {
    return {
      id: d.id,
      name: fqdn(d, this.tailnet),
      hostname: d.hostname,
      addresses: [`${d.ipv4}/32`, `${d.ipv6}/128`],
      user: userRef(this.users.get(d.userId)),
      tags: d.tags,
      network: { name: this.tailnet.name, domain: this.tailnet.domain },
      nodeKey: d.nodeKey,
      authorized: d.authorized,
      expires: d.expires,
    };
  }

  /** Sharer side: whether this tailnet's policy lets the recipient's device reach shared device `id`. */
  private visitorAllowed(id: string, v: Device): boolean {
    for (const r of this.compiler.filterFor(id) ?? []) {
      if (r.DstPorts && r.DstPorts.length > 0 && (sourcesContain(r.SrcIPs, v.ipv4) || sourcesContain(r.SrcIPs, v.ipv6))) return true;
    }
    return false;
  }

  /**
   * A device of another tailnet as a peer. Shared in (recipient side): owned by the sharer, full DNS
   * name of its own tailnet, no tags or routes, quarantined. A visitor (sharer side): the recipient's
   * device, which the shared device may answer.
   */
  private extEntry(e: ExtDevice, sharedIn: boolean): string {
    const d = e.device;
    const addresses = [`${d.ipv4}/32`, `${d.ipv6}/128`];
    const p: PeerNode = {
      id: d.id,
      name: fqdn(d, e.tailnet),
      addresses,
      nodeKey: d.nodeKey,
      endpoints: d.endpoints,
      allowedIPs: addresses,
      user: userRef(e.user),
      tags: [],
      os: d.os,
      online: this.hub.isOnline(d.tailnetId, d.id),
      lastSeen: d.lastSeen,
      shared: sharedIn,
      quarantined: sharedIn,
    };
    return JSON.stringify(p);
  }

  /**
   * Sends the device what changed in its netmap since the last one it was sent: nothing when nothing
   * did, a delta otherwise, and the full netmap on a new stream (`force`).
   */
  push(id: string, force = false, peerIds?: string[]): void {
    const sinks = this.streams.get(id);
    const d = this.devices.get(id);
    if (!sinks || sinks.size === 0 || !d) return;
    const peers = this.currentPeers(d, peerIds);
    const peerTexts = peers.map((p) => this.peerEntry(this.devices.get(p)!));
    let shared = '';
    if (this.isLive(id)) {
      for (const v of this.visitors.get(id) ?? []) {
        if (!this.visitorAllowed(id, v.device)) continue;
        peers.push(v.device.id);
        peerTexts.push(this.extEntry(v, false));
      }
      if (this.recipients.has(d.userId)) {
        const rules: FilterRule[] = [];
        for (const [sid, si] of this.sharedIn) {
          if (!si.recipients.has(d.userId)) continue;
          const r = rulesBetween(this.compiler.filterFor(sid) ?? [], [d.ipv4, d.ipv6], [si.device.ipv4, si.device.ipv6]);
          if (r.length === 0) continue; // this tailnet's policy does not let the device reach it
          rules.push(...r);
          peers.push(sid);
          peerTexts.push(this.extEntry(si, true));
        }
        shared = JSON.stringify(rules);
      }
    }
    const now: Sent = {
      self: this.selfEntry(d),
      filter: this.isLive(id) ? JSON.stringify(carveSources(this.compiler.filterFor(id) ?? [], this.excluded, this.carved)) : '[]',
      shared,
      dns: this.dnsJson(),
      peerIds: peers,
      peerTexts,
    };
    const prev = this.lastSent.get(id);
    let line: string;
    if (force || !prev) {
      const sharedPart = now.shared === '' ? '' : `,"sharedPeerRules":${now.shared}`;
      line = `{"type":"netmap","netmap":{"version":${this.hub.nextVersion()},"self":${now.self},"peers":[${now.peerTexts.join(',')}],"packetFilter":${now.filter}${sharedPart},"dns":${now.dns}}}\n`;
    } else {
      let parts = '';
      if (prev.self !== now.self) parts += `,"self":${now.self}`;
      if (prev.filter !== now.filter) parts += `,"packetFilter":${now.filter}`;
      if (prev.shared !== now.shared) parts += `,"sharedPeerRules":${now.shared === '' ? '[]' : now.shared}`;
      if (prev.dns !== now.dns) parts += `,"dns":${now.dns}`;
      const upsert: string[] = [];
      const removed: string[] = [];
      const sameOrder = prev.peerIds.length === peers.length && prev.peerIds.every((p, i) => p === peers[i]);
      if (sameOrder) {
        for (let i = 0; i < peers.length; i++) if (prev.peerTexts[i] !== now.peerTexts[i]) upsert.push(now.peerTexts[i]!);
      } else {
        const before = new Map(prev.peerIds.map((p, i) => [p, prev.peerTexts[i]!]));
        const after = new Set(peers);
        for (let i = 0; i < peers.length; i++) if (before.get(peers[i]!) !== now.peerTexts[i]) upsert.push(now.peerTexts[i]!);
        for (const p of prev.peerIds) if (!after.has(p)) removed.push(p);
      }
      if (upsert.length > 0) parts += `,"peersUpsert":[${upsert.join(',')}]`;
      if (removed.length > 0) parts += `,"peersRemove":${JSON.stringify(removed)}`;
      if (parts === '') return;
      line = `{"type":"delta","delta":{"version":${this.hub.nextVersion()}${parts}}}\n`;
    }
    this.lastSent.set(id, now);
    this.recordPeers(id, peers);
    for (const s of sinks) s.write(line);
  }
}

export class NetmapHub {
  private readonly tailnets = new Map<number, LiveTailnet>();
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private lastVersion = 0;

  constructor(private readonly store: Store, readonly log: Logger, keepaliveMs = 30_000) {
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
      n = new LiveTailnet(this.store, t, policy, { isOnline: (tid, id) => this.isOnline(tid, id), nextVersion: () => this.nextVersion() });
      this.tailnets.set(tailnetId, n);
      this.loadSharing(n, false);
    }
    return n;
  }

  /** Monotonic across restarts: milliseconds since the epoch, bumped when called twice in one ms. */
  private nextVersion(): number {
    this.lastVersion = Math.max(this.lastVersion + 1, Date.now());
    return this.lastVersion;
  }

  // ── sharing (issue 7) ────────────────────────────────────────────────────────

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
      if (!u || !t || u.status !== 'active' || !n.devices.has(sh.deviceId)) continue;
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
      if (!d || !t || !isActive(d) || !r || r.status !== 'active') continue;
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
    n.push(device.id, true);
    if (!wasOnline) this.presenceChanged(n, device.id);
    return () => {
      if (!sinks!.delete(sink)) return;
      if (sinks!.size === 0) {
        n.streams.delete(device.id);
        n.forget(device.id);
        const d = this.store.getDevice(device.id);
        if (d) {
          n.devices.set(d.id, this.store.updateDevice(d.id, { lastSeen: new Date().toISOString() }));
          this.presenceChanged(n, device.id);
        }
      }
    };
  }

  isOnline(tailnetId: number, deviceId: string): boolean {
    return (this.tailnets.get(tailnetId)?.streams.get(deviceId)?.size ?? 0) > 0;
  }

  private presenceChanged(n: LiveTailnet, id: string): void {
    n.peerJson.delete(id);
    for (const p of [...n.viewersOf(id)]) n.push(p);
    if (n.partners.size > 0 && this.touchesSharing(n, id, [n.devices.get(id)?.userId])) {
      for (const t of n.partners) {
        const pn = this.tailnets.get(t);
        if (pn) for (const s of pn.streams.keys()) pn.push(s);
      }
    }
  }

  /** The policy changed (already stored). */
  policyChanged(tailnetId: number, policy: Policy): void {
    const n = this.tailnets.get(tailnetId);
    if (!n) return;
    n.policy = policy;
    this.settle(n, n.applyFilters(n.compiler.setPolicy(policy)));
  }

  /**
   * Compiles a new policy into the live tailnet without telling any device yet. The caller stores the
   * policy, then calls commit() (devices get their netmaps), or rollback() if storing failed. Throws
   * (and changes nothing) when the policy does not compile.
   */
  preparePolicy(tailnetId: number, policy: Policy): { commit(): void; rollback(): void } {
    const n = this.live(tailnetId);
    const old = n.policy;
    const changed = n.compiler.setPolicy(policy);
    n.policy = policy;
    return {
      commit: () => this.settle(n, n.applyFilters(changed)),
      rollback: () => {
        n.compiler.setPolicy(old);
        n.policy = old;
      },
    };
  }

  /** A device was created, changed (tags, routes, key, authorization, name, endpoints) or deleted. */
  deviceChanged(tailnetId: number, deviceId: string): void {
    const n = this.tailnets.get(tailnetId);
    if (!n) return;
    const after = this.store.getDevice(deviceId);
    const sharing = this.touchesSharing(n, deviceId, [n.devices.get(deviceId)?.userId, after?.userId]);
    n.peerJson.delete(deviceId);
    n.selfJson.delete(deviceId);
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
    for (const [tailnetId, n] of this.tailnets) {
      for (const [id, d] of n.devices) {
        if (n.isLive(id) !== n.shouldBeLive(d)) this.deviceChanged(tailnetId, id);
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
