// One tailnet as the netmap hub keeps it live: the compiled policy (incremental), the devices and
// users, the peer index, the open streams, and what each streaming device was last sent. `push` sends
// a device what changed in its netmap (a delta), or nothing. The hub (netmap-stream.ts) decides who.
import type { DnsConfig, PeerNode, SelfNode, UserRef } from '../wire/protocol.js';
import type { FilterRule } from '../wire/types.js';
import { PeerIndex } from './peers.js';
import { PolicyCompiler, type Policy } from './policy/index.js';
import { planRoutes, routerViewOf, type RouterPlan, type RouterView } from './route-plan.js';
import { carveSources, excludedOf, rulesBetween, sourcesContain, type Excluded } from './sharing.js';
import { fqdn, type Device, type Store, type Tailnet, type User } from './store/index.js';
import { isActive, topoNodeOf, topoUserOf } from './topology.js';

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
  /** The relay map as JSON, '' when there is none. */
  relays: string;
  /** coord's STUN ports as JSON ('' when STUN is off). */
  stun: string;
  /** The peers as sent: ids and their JSON, in the same order. */
  peerIds: string[];
  peerTexts: string[];
}

function userRef(u: User | undefined): UserRef {
  return u ? { id: u.id, loginName: u.email, displayName: u.displayName } : { id: '', loginName: '', displayName: '' };
}

/**
 * A device as a peer in a netmap: one of the same tailnet (`own`: its tags go along, and the routes
 * `plan` gives the viewing device), or of another tailnet through a share: a `visitor` (sharer side)
 * or `shared-in` (recipient side, quarantined), without tags or routes.
 */
function peerNode(d: Device, home: Tailnet, owner: User | undefined, online: boolean, kind: 'own' | 'visitor' | 'shared-in', plan?: RouterPlan): PeerNode {
  const addresses = [`${d.ipv4}/32`, `${d.ipv6}/128`];
  const own = kind === 'own';
  const sharedIn = kind === 'shared-in';
  const routes = own ? plan : undefined;
  return {
    id: d.id,
    name: fqdn(d, home),
    addresses,
    nodeKey: d.nodeKey,
    endpoints: d.endpoints,
    allowedIPs: routes ? [...addresses, ...routes.primary] : addresses,
    user: userRef(owner),
    tags: own ? d.tags : [],
    os: d.os,
    online,
    lastSeen: d.lastSeen,
    shared: sharedIn,
    quarantined: sharedIn,
    ...(d.discoKey ? { discoKey: d.discoKey } : {}),
    ...(d.homeRelay ? { homeRelay: d.homeRelay } : {}),
    ...(routes && routes.offered.length > 0 ? { routes: routes.offered, primaryRoutes: routes.primary } : {}),
    ...(routes && routes.exitRoutes.length > 0 ? { exitNodeOption: true, exitRoutes: routes.exitRoutes } : {}),
  };
}

/** A device of another tailnet that this tailnet's netmaps show (sharing). */
export interface ExtDevice {
  device: Device;
  tailnet: Tailnet;
  /** Sharer side: the recipient (the device's owner). Recipient side: the sharer, shown as the owner. */
  user: User | undefined;
}

/** Recipient side: a device of another tailnet shared with some users of this one. */
export interface SharedIn extends ExtDevice {
  recipients: Set<string>;
}

export class LiveTailnet {
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
  /** Routers' views for route planning (null: approves no route), dropped when the device or its filter changes. */
  private readonly routerViews = new Map<string, RouterView | null>();
  /**
   * Per device seen on a stream since coord started: online or not, and the order of that change.
   * Routers are preferred online, longest online first, so a primary keeps its prefixes until it goes.
   */
  private readonly presence = new Map<string, { online: boolean; seq: number }>();
  private presenceSeq = 0;

  constructor(
    readonly store: Store,
    tailnet: Tailnet,
    public policy: Policy,
    private readonly hub: {
      /** Whether a device (of any tailnet) has a netmap stream open. */
      isOnline(tailnetId: number, id: string): boolean;
      /** The version of the next netmap or delta sent (the hub's counter, shared by its tailnets). */
      nextVersion(): number;
      /** The relay map as JSON ('' for none). */
      relaysJson(): string;
      stunPortsJson(): string;
      /** The node keys of the peers a device's netmap now lists (null: it has no netmap any more). */
      peersSent(deviceId: string, nodeKey: string, peerKeys: string[] | null): void;
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
    for (const id of ids) {
      this.routerViews.delete(id);
      if (this.live.has(id)) this.peerIndex.setFilter(id, this.compiler.filterFor(id));
    }
    return ids;
  }

  /** The device changed (its routes, tags or liveness): its router view is recomputed when next needed. */
  routerChanged(id: string): void {
    this.routerViews.delete(id);
  }

  /** A device's stream opened (its first) or closed (its last). */
  setPresence(id: string, online: boolean): void {
    this.presence.set(id, { online, seq: ++this.presenceSeq });
  }

  private routerView(id: string): RouterView | null {
    let v = this.routerViews.get(id);
    if (v === undefined) {
      const d = this.devices.get(id);
      v = d && this.isLive(id) ? routerViewOf(id, d.tags, d.enabledRoutes, this.compiler.filterFor(id)) : null;
      this.routerViews.set(id, v);
    }
    return v;
  }

  /** Router preference: online ones longest online first, then offline ones most recently seen first, then by id. */
  private preferRouter = (a: RouterView, b: RouterView): number => {
    const pa = this.presence.get(a.id);
    const pb = this.presence.get(b.id);
    const rank = (p: { online: boolean } | undefined) => (p ? (p.online ? 0 : 1) : 2);
    const ra = rank(pa);
    const rb = rank(pb);
    if (ra !== rb) return ra - rb;
    if (ra === 0) return pa!.seq - pb!.seq;
    if (ra === 1) return pb!.seq - pa!.seq;
    return a.id.localeCompare(b.id, 'en', { numeric: true });
  };

  /** Device `d`'s route plan over the routers among its peers. */
  private routePlan(d: Device, peers: string[]): Map<string, RouterPlan> | undefined {
    const views: RouterView[] = [];
    for (const p of peers) {
      if (this.devices.get(p)!.enabledRoutes.length === 0) continue;
      const v = this.routerView(p);
      if (v) views.push(v);
    }
    if (views.length === 0) return undefined;
    views.sort(this.preferRouter);
    return planRoutes({ addrs: [d.ipv4, d.ipv6], via: this.compiler.viaFor(d.id), own: d.enabledRoutes }, views);
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
    this.hub.peersSent(id, '', null);
    this.recordPeers(id, []);
    this.sentPeers.delete(id);
    this.lastSent.delete(id);
  }

  peerEntry(d: Device): string {
    let s = this.peerJson.get(d.id);
    if (s === undefined) {
      s = JSON.stringify(peerNode(d, this.tailnet, this.users.get(d.userId), (this.streams.get(d.id)?.size ?? 0) > 0, 'own'));
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
    this.routerViews.clear();
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

  private selfOf(d: Device): SelfNode {
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
      advertisedRoutes: d.advertisedRoutes,
      approvedRoutes: d.enabledRoutes,
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
    return JSON.stringify(peerNode(d, e.tailnet, e.user, this.hub.isOnline(d.tailnetId, d.id), sharedIn ? 'shared-in' : 'visitor'));
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
    const plan = this.routePlan(d, peers);
    const peerTexts = peers.map((p) => {
      const pd = this.devices.get(p)!;
      // A router's entry differs per viewer (its routes for this device); others are shared.
      if (pd.enabledRoutes.length === 0) return this.peerEntry(pd);
      return JSON.stringify(peerNode(pd, this.tailnet, this.users.get(pd.userId), (this.streams.get(pd.id)?.size ?? 0) > 0, 'own', plan?.get(p)));
    });
    const peerKeys = peers.map((p) => this.devices.get(p)!.nodeKey);
    let shared = '';
    if (this.isLive(id)) {
      for (const v of this.visitors.get(id) ?? []) {
        if (!this.visitorAllowed(id, v.device)) continue;
        peers.push(v.device.id);
        peerTexts.push(this.extEntry(v, false));
        peerKeys.push(v.device.nodeKey);
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
          peerKeys.push(si.device.nodeKey);
        }
        shared = JSON.stringify(rules);
      }
    }
    const now: Sent = {
      self: this.selfEntry(d),
      filter: this.isLive(id) ? JSON.stringify(carveSources(this.compiler.filterFor(id) ?? [], this.excluded, this.carved)) : '[]',
      shared,
      dns: this.dnsJson(),
      relays: this.hub.relaysJson(),
      stun: this.hub.stunPortsJson(),
      peerIds: peers,
      peerTexts,
    };
    const prev = this.lastSent.get(id);
    let line: string;
    if (force || !prev) {
      const sharedPart = now.shared === '' ? '' : `,"sharedPeerRules":${now.shared}`;
      const relaysPart = now.relays === '' ? '' : `,"relays":${now.relays}`;
      const stunPart = now.stun === '' ? '' : `,"stunPorts":${now.stun}`;
      line = `{"type":"netmap","netmap":{"version":${this.hub.nextVersion()},"self":${now.self},"peers":[${now.peerTexts.join(',')}],"packetFilter":${now.filter}${sharedPart},"dns":${now.dns}${relaysPart}${stunPart}}}\n`;
    } else {
      let parts = '';
      if (prev.self !== now.self) parts += `,"self":${now.self}`;
      if (prev.filter !== now.filter) parts += `,"packetFilter":${now.filter}`;
      if (prev.shared !== now.shared) parts += `,"sharedPeerRules":${now.shared === '' ? '[]' : now.shared}`;
      if (prev.dns !== now.dns) parts += `,"dns":${now.dns}`;
      if (prev.relays !== now.relays) parts += `,"relays":${now.relays === '' ? '[]' : now.relays}`;
      if (prev.stun !== now.stun) parts += `,"stunPorts":${now.stun === '' ? '[]' : now.stun}`;
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
    this.hub.peersSent(id, d.nodeKey, peerKeys);
    for (const s of sinks) s.write(line);
  }
}
