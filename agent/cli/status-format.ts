// `agent status` as a person reads it, modelled on `tailscale status`: this device first, then one
// line per peer with IP, name, owner, OS and state.
import { printable } from '../../wire/printable.js';
import type { AgentStatus, PeerStatus, PingResponse, RoutingStatus } from '../localapi/types.js';

/** A handshake younger than this (WireGuard's reject-after time) makes a peer "active". */
const ACTIVE_WINDOW_MS = 180_000;

export function formatAgo(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function peerState(peer: PeerStatus, now: number): string {
  let state: string;
  if (!peer.online) {
    state = peer.lastSeen ? `offline, last seen ${formatAgo(now - Date.parse(peer.lastSeen))}` : 'offline';
  } else if (peer.lastHandshake && now - Date.parse(peer.lastHandshake) < ACTIVE_WINDOW_MS && peer.path === 'relay') {
    state = `active; relay ${JSON.stringify(peer.relay ?? '')}`;
  } else if (peer.lastHandshake && now - Date.parse(peer.lastHandshake) < ACTIVE_WINDOW_MS && peer.endpoint) {
    state = `active; direct ${peer.endpoint}`;
  } else {
    state = 'idle';
  }
  if (peer.txBytes > 0 || peer.rxBytes > 0) state += `, tx ${peer.txBytes} rx ${peer.rxBytes}`;
  if (peer.shared) state += '; shared';
  if (peer.quarantined) state += peer.shared ? ', quarantined' : '; quarantined';
  return state;
}

function table(cells: string[][]): string {
  // Names, owners and OS strings come from other devices: no control character reaches the terminal.
  const rows = cells.map((r) => r.map((c) => printable(c)));
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows
    .map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '))
    .join('\n');
}

export function formatStatus(status: AgentStatus, now = Date.now()): string {
  const lines: string[] = [];
  if (status.backendState === 'NeedsLogin') {
    return 'Logged out. Log in with: agent up --coord URL --authkey KEY';
  }
  if (status.backendState === 'Stopped') lines.push('meshward is stopped; start it with: agent up');
  if (status.coord.error && !status.coord.connected) {
    lines.push(`# coord unreachable (${printable(status.coord.error)}); running on the last netmap`);
  }
  for (const h of status.health ?? []) lines.push(`# ${printable(h)}`);
  const rows: string[][] = [];
  if (status.self) {
    const s = status.self;
    rows.push([s.addresses[0] ?? '-', s.name, s.tags.length ? 'tagged-devices' : s.owner, s.os, '-']);
  }
  const peers = [...status.peers].sort((a, b) => a.name.localeCompare(b.name));
  for (const p of peers) {
    rows.push([p.addresses[0] ?? '-', p.name, p.tags.length && !p.shared ? 'tagged-devices' : p.owner, p.os || '-', peerState(p, now)]);
  }
  if (rows.length) lines.push(table(rows));
  lines.push(...formatRouting(status));
  return lines.join('\n');
}

/** Subnet routes and exit nodes, below the table: what this device offers and uses, what peers offer. */
export function formatRouting(status: AgentStatus): string[] {
  const r = status.routing;
  const out: string[] = [];
  if (r) {
    const offered = [...r.advertisedRoutes, ...(r.advertiseExitNode ? ['0.0.0.0/0', '::/0'] : [])];
    if (offered.length) {
      const mark = (route: string) => `${route} (${r.approvedRoutes.includes(route) ? 'approved' : 'awaiting approval'})`;
      out.push(`# this device offers: ${r.advertisedRoutes.map(mark).join(', ') || 'no subnet routes'}${r.advertiseExitNode ? `; exit node ${r.approvedRoutes.includes('0.0.0.0/0') ? '(approved)' : '(awaiting approval)'}` : ''}${r.snatSubnetRoutes ? '' : '; no source NAT'}`);
    }
    if (r.exitNode) out.push(`# exit node in use: ${printable(r.exitNode.name)} (${r.exitNode.address})${r.exitNodeAllowLanAccess ? ', LAN reachable directly' : ''}`);
    else if (r.exitNodeWanted) out.push(`# exit node ${printable(r.exitNodeWanted)} not available: internet traffic is blocked until it is (agent up --exit-node= sends it out directly)`);
  }
  const peers = [...status.peers].filter((p) => (p.routes?.length ?? 0) > 0 || p.exitNodeOption).sort((a, b) => a.name.localeCompare(b.name));
  for (const p of peers) {
    const parts = (p.routes ?? []).map((route) => (p.routesInUse?.includes(route) ? `${route} (in use)` : route));
    if (p.exitNodeOption) parts.push(p.exitNode ? 'exit node (in use)' : 'exit node');
    out.push(`# ${printable(p.name)} offers: ${parts.join(', ')}`);
  }
  return out;
}

/**
 * After `agent up`: the route settings in effect that are not the defaults, as the flags that give them.
 * Unlike `tailscale up` (which refuses a command that leaves out a non-default setting), `agent up`
 * keeps every setting it is not given, as `tailscale set` does: this line says what stays. Null: all defaults.
 */
export function formatRouteSettings(r: RoutingStatus | null | undefined): string | null {
  if (!r) return null;
  const flags: string[] = [];
  if (r.advertisedRoutes.length) flags.push(`--advertise-routes=${r.advertisedRoutes.join(',')}`);
  if (r.advertiseExitNode) flags.push('--advertise-exit-node');
  if (!r.snatSubnetRoutes) flags.push('--snat-subnet-routes=false');
  if (r.acceptRoutes) flags.push('--accept-routes');
  if (r.acceptRoutesOverLan) flags.push('--accept-routes-over-lan');
  if (r.exitNodeWanted) flags.push(`--exit-node=${printable(r.exitNodeWanted)}`);
  if (r.exitNodeAllowLanAccess) flags.push('--exit-node-allow-lan-access');
  if (flags.length === 0) return null;
  return `route settings: ${flags.join(' ')} (kept by later \`agent up\` runs and restarts; to undo one, give it again, e.g. --advertise-routes= --accept-routes=false --exit-node=)`;
}

/** One line of `agent ping`, as `tailscale ping` prints it. */
export function formatPong(r: PingResponse): string {
  const who = `${printable(r.peer.name)} (${r.peer.address ?? '-'})`;
  const p = r.pong;
  if (!p) return `timeout waiting for a pong from ${who}`;
  const via = p.path === 'direct' ? p.endpoint : `relay ${JSON.stringify(printable(p.relay ?? ''))}`;
  return `pong from ${who} via ${via} in ${Math.round(p.latencyMs * 10) / 10}ms`;
}
