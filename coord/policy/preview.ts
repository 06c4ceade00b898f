// Preview (Tailscale's POST /acl/preview): for a user, the rules that let them reach something; for an
// "ip:port", the rules that let someone reach it. Each match carries the rule's line in the policy file.
import { parseAddr, parseRange, rangeContains, rangeOfAddr, type Range } from '../../wire/addr.js';
import type { AclRule, Grant, Policy, Sel } from './parse.js';
import type { Topology } from './types.js';

export interface PreviewMatch {
  /** The rule's sources as written. */
  users: string[];
  /** The destinations as written ("tag:web:443"; grants: each dst with each ip entry). */
  ports: string[];
  /** 1-based line of the rule in the policy file. */
  lineNumber: number;
}

export interface PreviewResult {
  type: 'user' | 'ipport';
  previewFor: string;
  matches: PreviewMatch[];
}

const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 2: 'igmp', 6: 'tcp', 17: 'udp', 47: 'gre', 50: 'esp', 51: 'ah', 58: 'ipv6-icmp', 132: 'sctp' };

function ipTexts(g: Grant): string[] {
  return g.ip.map((spec) => {
    const ports = spec.ports.map((p) => (p.First === 0 && p.Last === 65535 ? '*' : p.First === p.Last ? `${p.First}` : `${p.First}-${p.Last}`)).join(',');
    return spec.protos ? `${spec.protos.map((n) => PROTO_NAMES[n] ?? String(n)).join(',')}:${ports}` : ports;
  });
}

function destTexts(rule: AclRule | Grant): string[] {
  if (rule.kind === 'acl') {
    return rule.dst.map((d) => {
      const ports = d.ports.map((p) => (p.First === 0 && p.Last === 65535 ? '*' : p.First === p.Last ? `${p.First}` : `${p.First}-${p.Last}`)).join(',');
      return `${d.text}:${ports}`;
    });
  }
  const ips = ipTexts(rule);
  const out: string[] = [];
  for (const d of rule.dst) {
    if (ips.length === 0) out.push(d.text);
    for (const ip of ips) out.push(`${d.text}:${ip}`);
  }
  if (rule.app) for (const cap of Object.keys(rule.app)) out.push(`app ${cap}`);
  return out;
}

/** What `who.user` may reach, or who may reach `who.ipPort`, with the line of each allowing rule. */
export function preview(policy: Policy, topo: Topology, who: { user?: string; ipPort?: string }): PreviewResult {
  const rules = [...policy.acls, ...policy.grants].sort((a, b) => a.line - b.line);
  if (who.user !== undefined) {
    const email = who.user.toLowerCase();
    const user = topo.users.find((u) => u.email.toLowerCase() === email);
    const role = user?.role ?? 'member';
    const groups = new Set([...policy.groups].filter(([, m]) => m.some((x) => x.toLowerCase() === email)).map(([g]) => g));
    const userDevices = Object.values(topo.nodes).filter((n) => (n.tags ?? []).length === 0 && (n.user === user?.name || n.user?.toLowerCase() === email));
    const names = (s: Sel): boolean => {
      switch (s.k) {
        case 'all': case 'danger': return true;
        case 'member': return user !== undefined;
        case 'user': return s.email === email;
        case 'domain': return email.endsWith('@' + s.domain);
        case 'group': return groups.has(s.name);
        case 'role': return user !== undefined && role === s.role;
        case 'shared': return (topo.sharedUsers ?? []).some((u) => u.email.toLowerCase() === email);
        case 'prefix': return userDevices.some((n) => [n.ipv4, n.ipv6].some((a) => a && contains(s.range, a)));
        default: return false;
      }
    };
    const matches = rules.filter((r) => r.src.some((s) => names(s.sel))).map((r) => ({ users: r.src.map((s) => s.text), ports: destTexts(r), lineNumber: r.line }));
    return { type: 'user', previewFor: who.user, matches };
  }
  const ipPort = who.ipPort ?? '';
  const colon = ipPort.lastIndexOf(':');
  const ip = ipPort.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(ipPort.slice(colon + 1));
  const parsed = parseAddr(ip);
  const addr = parsed && rangeOfAddr(parsed);
  if (colon < 0 || !addr || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`preview: ${JSON.stringify(ipPort)} is not an ip:port like 100.64.0.1:22`);
  }
  const node = Object.values(topo.nodes).find((n) => n.ipv4 === ip || n.ipv6 === ip);
  const owner = node && (node.tags ?? []).length === 0 ? topo.users.find((u) => u.name === node.user || u.email === node.user) : undefined;
  const isDst = (s: Sel): boolean => {
    switch (s.k) {
      case 'all': return true;
      case 'prefix': return rangeContains(s.range, addr);
      case 'tag': return node !== undefined && (node.tags ?? []).includes(s.name);
      case 'tagged': return node !== undefined && (node.tags ?? []).length > 0;
      case 'member': case 'self': return owner !== undefined;
      case 'user': return owner !== undefined && owner.email.toLowerCase() === s.email;
      case 'domain': return owner !== undefined && owner.email.toLowerCase().endsWith('@' + s.domain);
      case 'group': return owner !== undefined && (policy.groups.get(s.name) ?? []).some((m) => m.toLowerCase() === owner.email.toLowerCase());
      case 'role': return owner !== undefined && (owner.role ?? 'member') === s.role;
      default: return false;
    }
  };
  const matches: PreviewMatch[] = [];
  for (const r of rules) {
    const ports: string[] = [];
    if (r.kind === 'acl') {
      for (const d of r.dst) if (isDst(d.sel) && d.ports.some((p) => p.First <= port && port <= p.Last)) ports.push(destTexts({ ...r, dst: [d] })[0]!);
    } else if (r.ip.length > 0 && r.via.length === 0 && r.ip.some((spec) => spec.ports.some((p) => p.First <= port && port <= p.Last))) {
      for (const d of r.dst) if (isDst(d.sel)) ports.push(...destTexts({ ...r, dst: [d], app: undefined }).filter(Boolean));
    }
    if (ports.length > 0) matches.push({ users: r.src.map((s) => s.text), ports, lineNumber: r.line });
  }
  return { type: 'ipport', previewFor: ipPort, matches };
}

function contains(range: Range, addr: string): boolean {
  const a = parseRange(addr);
  return a !== null && rangeContains(range, a);
}
