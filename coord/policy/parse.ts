// HuJSON policy text → validated Policy. Every refusal names the line:column of the offending value.
// All checks that depend only on the policy (not on the devices) happen here, so compiling never fails.
import { createScanner, parseTree, printParseErrorCode, SyntaxKind, type Node, type ParseError } from 'jsonc-parser';
import { PolicyError } from './errors.js';
import { isFullRange, parseRange, type Range } from '../../wire/addr.js';
import type { PortRange } from '../../wire/types.js';
import { IPPROTO } from '../../wire/types.js';
import type { Pos, Role } from './types.js';
import { parsePostureCondition, type PostureCond } from './posture.js';

export const ROLES: readonly Role[] = ['owner', 'admin', 'network-admin', 'it-admin', 'billing-admin', 'auditor', 'member'];

/** A resolved-at-compile-time selector. */
export type Sel =
  | { k: 'all' }
  | { k: 'danger' }
  | { k: 'user'; email: string }
  | { k: 'domain'; domain: string }
  | { k: 'group'; name: string }
  | { k: 'tag'; name: string }
  | { k: 'prefix'; text: string; range: Range }
  | { k: 'member' }
  | { k: 'tagged' }
  | { k: 'self' }
  | { k: 'shared' }
  | { k: 'internet' }
  | { k: 'role'; role: Role };

export interface Selector {
  text: string;
  at: Pos;
  sel: Sel;
}

export interface DstEntry extends Selector {
  ports: PortRange[];
}

export interface AclRule {
  kind: 'acl';
  /** 1-based line of the rule's opening brace. */
  line: number;
  at: Pos;
  src: Selector[];
  dst: DstEntry[];
  /** Absent: TCP, UDP, ICMP, ICMPv6. */
  protos?: number[];
  srcPosture: string[];
}

/** One `ip` entry of a grant: protocols (absent = the default four) and ports. */
export interface IpSpec {
  protos?: number[];
  ports: PortRange[];
}

export interface Grant {
  kind: 'grant';
  line: number;
  at: Pos;
  src: Selector[];
  dst: Selector[];
  ip: IpSpec[];
  app?: Record<string, unknown[]>;
  /** Tags ("tag:x") of the routers this grant applies through. */
  via: string[];
  srcPosture: string[];
}

export type PostureValue = string | number | boolean;

export interface PolicyTest {
  line: number;
  at: Pos;
  /** "" when missing. Like Tailscale, a test that names nothing valid fails when run, not at parse. */
  src: string;
  /** null when `src` names nothing known (the test then fails). */
  srcSel: Sel | null;
  protos?: number[];
  /** The source device's posture attributes for this test (none: a device without any). */
  srcPostureAttrs?: Record<string, PostureValue>;
  accept: string[];
  deny: string[];
}

export interface Policy {
  groups: Map<string, string[]>;
  hosts: Map<string, { text: string; range: Range }>;
  tagOwners: Map<string, string[]>;
  acls: AclRule[];
  grants: Grant[];
  tests: PolicyTest[];
  postures: Map<string, PostureCond[]>;
  defaultSrcPosture: string[];
  autoApprovers: { routes: Record<string, string[]>; exitNode: string[] };
}

const PROTO_NAMES: Record<string, number> = {
  icmp: IPPROTO.ICMP,
  igmp: IPPROTO.IGMP,
  tcp: IPPROTO.TCP,
  egp: IPPROTO.EGP,
  igp: IPPROTO.IGP,
  udp: IPPROTO.UDP,
  gre: IPPROTO.GRE,
  esp: IPPROTO.ESP,
  ah: IPPROTO.AH,
  'ipv6-icmp': IPPROTO.ICMPV6,
  icmpv6: IPPROTO.ICMPV6,
  sctp: IPPROTO.SCTP,
};

/** Capabilities in Tailscale's own domain a policy may grant (the others are reserved for the service). */
const TAILSCALE_CAPS = new Set([
  'tailscale.com/cap/drive',
  'tailscale.com/cap/relay',
  'tailscale.com/cap/webui',
  'tailscale.com/cap/kubernetes',
  'tailscale.com/cap/tsidp',
  'tailscale.com/cap/funnel-ports',
  'tailscale.com/cap/file-sharing',
]);

// Sections that Tailscale policy files carry and this engine accepts but does not act on.
const IGNORED_SECTIONS = new Set([
  'ssh', 'sshTests', 'nodeAttrs', 'derpMap', 'randomizeClientPort', 'disableIPv4', 'OneCGNATRoute',
  'ipsets', 'attrConfig', 'SSH', 'NodeAttrs', 'DERPMap', 'DisableIPv4', 'RandomizeClientPort',
  'Postures', 'DefaultSrcPosture',
]);

// Section name (either spelling) → canonical name.
const SECTIONS: Record<string, string> = {
  acls: 'acls', ACLs: 'acls',
  grants: 'grants', Grants: 'grants',
  groups: 'groups', Groups: 'groups',
  hosts: 'hosts', Hosts: 'hosts',
  tagOwners: 'tagOwners', TagOwners: 'tagOwners',
  tests: 'tests', Tests: 'tests',
  postures: 'postures',
  defaultSrcPosture: 'defaultSrcPosture',
  autoApprovers: 'autoApprovers', AutoApprovers: 'autoApprovers',
};

class Ctx {
  private lineStarts: number[] = [0];
  constructor(readonly text: string) {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.lineStarts.push(i + 1);
  }
  pos(offset: number): Pos {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - this.lineStarts[lo]! + 1 };
  }
  fail(node: Node | undefined, reason: string): never {
    throw new PolicyError(reason, node ? this.pos(node.offset) : undefined);
  }
}

function props(ctx: Ctx, node: Node, what: string): [string, Node, Node][] {
  if (node.type !== 'object') ctx.fail(node, `${what} must be an object`);
  return (node.children ?? []).map((p) => [p.children![0]!.value as string, p.children![1]!, p.children![0]!]);
}

function strList(ctx: Ctx, node: Node, what: string): [string, Node][] {
  if (node.type !== 'array') ctx.fail(node, `${what} must be a list of strings`);
  return (node.children ?? []).map((c) => {
    if (c.type !== 'string') ctx.fail(c, `${what} must be a list of strings`);
    return [c.value as string, c];
  });
}

function str(ctx: Ctx, node: Node, what: string): string {
  if (node.type !== 'string') ctx.fail(node, `${what} must be a string`);
  return node.value as string;
}

const interned = new Map<number, PortRange>();

/**
 * The one shared, frozen object for a port range: compiled rules reference these instead of copies,
 * which keeps a large network's filters small.
 */
export function portRange(first: number, last: number): PortRange {
  const key = first * 65536 + last;
  let r = interned.get(key);
  if (!r) interned.set(key, (r = Object.freeze({ First: first, Last: last })));
  return r;
}

/** Parses "22", "80-443", "22,80,443", "*". `strictZero`: grants refuse port 0. */
export function parsePorts(text: string, strictZero: boolean): PortRange[] | string {
  if (text === '*') return [portRange(0, 65535)];
  const out: PortRange[] = [];
  for (const part of text.split(',')) {
    const [a, b, extra] = part.split('-');
    if (extra !== undefined) return `port range ${JSON.stringify(part)}: too many dashes`;
    if (!/^\d+$/.test(a ?? '')) return `port range ${JSON.stringify(part)}: invalid first integer`;
    const first = Number(a);
    let last = first;
    if (b !== undefined) {
      if (!/^\d+$/.test(b)) return `port range ${JSON.stringify(part)}: invalid last integer`;
      last = Number(b);
    }
    if (first > 65535 || last > 65535) return `port range ${JSON.stringify(part)}: port out of range (0-65535)`;
    if (first > last) return `port range ${JSON.stringify(part)}: first port is greater than last`;
    if (strictZero && first === 0) return `port range ${JSON.stringify(part)}: first port must be >0, or use '*' for wildcard`;
    out.push(portRange(first, last));
  }
  return out;
}

function parseProto(text: string): number | null {
  const t = text.toLowerCase();
  if (Object.hasOwn(PROTO_NAMES, t)) return PROTO_NAMES[t]!;
  if (/^\d{1,3}$/.test(t) && Number(t) <= 255) return Number(t);
  return null;
}

const AUTOGROUPS: Record<string, Sel> = {
  'autogroup:member': { k: 'member' },
  'autogroup:tagged': { k: 'tagged' },
  'autogroup:self': { k: 'self' },
  'autogroup:shared': { k: 'shared' },
  'autogroup:internet': { k: 'internet' },
  'autogroup:danger-all': { k: 'danger' },
  'autogroup:owner': { k: 'role', role: 'owner' },
  'autogroup:admin': { k: 'role', role: 'admin' },
  'autogroup:network-admin': { k: 'role', role: 'network-admin' },
  'autogroup:it-admin': { k: 'role', role: 'it-admin' },
  'autogroup:billing-admin': { k: 'role', role: 'billing-admin' },
  'autogroup:auditor': { k: 'role', role: 'auditor' },
};

/** How deeply a policy file may nest lists and objects (real ones nest about five deep). */
export const MAX_NESTING = 100;

/**
 * Refuses nesting deeper than MAX_NESTING before the (recursive) tree parser sees the text: a megabyte
 * of "[" would otherwise overflow the stack. Scans tokens, so brackets in strings and comments do not count.
 */
function checkNesting(ctx: Ctx): void {
  const scanner = createScanner(ctx.text, false);
  let depth = 0;
  for (let kind = scanner.scan(); kind !== SyntaxKind.EOF; kind = scanner.scan()) {
    if (kind === SyntaxKind.OpenBraceToken || kind === SyntaxKind.OpenBracketToken) {
      if (++depth > MAX_NESTING) throw new PolicyError(`lists and objects nest deeper than ${MAX_NESTING} levels`, ctx.pos(scanner.getTokenOffset()));
    } else if (kind === SyntaxKind.CloseBraceToken || kind === SyntaxKind.CloseBracketToken) {
      depth = Math.max(0, depth - 1);
    }
  }
}

/** The text's JSON tree (HuJSON: comments and trailing commas allowed); a malformed text is a PolicyError with its place. */
function parseJsonTree(ctx: Ctx): Node | undefined {
  checkNesting(ctx);
  const errors: ParseError[] = [];
  const root = parseTree(ctx.text, errors, { allowTrailingComma: true, disallowComments: false, allowEmptyContent: false });
  if (errors.length > 0) {
    const e = errors[0]!;
    throw new PolicyError(`invalid HuJSON: ${printParseErrorCode(e.error)}`, ctx.pos(e.offset));
  }
  return root;
}

/** A test's `srcPostureAttrs`: attribute name → string, number or boolean. */
function postureAttrs(ctx: Ctx, node: Node): Record<string, PostureValue> {
  if (node.type !== 'object') ctx.fail(node, 'srcPostureAttrs must be an object of attribute names and values');
  const out: Record<string, PostureValue> = {};
  for (const [key, value, keyNode] of props(ctx, node, 'srcPostureAttrs')) {
    if (!/^[a-z]+:[A-Za-z0-9_]+$/.test(key)) ctx.fail(keyNode, `srcPostureAttrs: ${JSON.stringify(key)} is not an attribute name (e.g. "custom:tier", "node:os")`);
    if (value.type !== 'string' && value.type !== 'number' && value.type !== 'boolean') ctx.fail(value, `srcPostureAttrs ${JSON.stringify(key)}: the value must be a string, number or boolean`);
    out[key] = value.value as PostureValue;
  }
  return out;
}

/**
 * Parses a policy file. Throws PolicyError (with line and column) when the file is refused. With
 * `testsText` (a JSON list of tests), those are its tests instead of the file's own: acl/validate's way
 * of running tests against the stored policy (positions in them are the list's).
 */
export function parsePolicy(text: string, testsText?: string): Policy {
  const ctx: Ctx = new Ctx(text);
  const root = parseJsonTree(ctx);
  if (!root || root.type !== 'object') ctx.fail(root, 'the policy must be a JSON object');

  const policy: Policy = {
    groups: new Map(),
    hosts: new Map(),
    tagOwners: new Map(),
    acls: [],
    grants: [],
    tests: [],
    postures: new Map(),
    defaultSrcPosture: [],
    autoApprovers: { routes: {}, exitNode: [] },
  };

  const sections = new Map<string, Node>();
  for (const [key, value, keyNode] of props(ctx, root, 'the policy')) {
    const canon = SECTIONS[key];
    if (canon) {
      if (sections.has(canon)) ctx.fail(keyNode, `duplicate section ${JSON.stringify(key)}`);
      sections.set(canon, value);
    } else if (!IGNORED_SECTIONS.has(key)) {
      ctx.fail(keyNode, `unknown field ${JSON.stringify(key)}`);
    }
  }

  // Definitions first: rules may refer to them wherever they appear in the file.
  const groupsNode = sections.get('groups');
  if (groupsNode) {
    for (const [name, value, keyNode] of props(ctx, groupsNode, 'groups')) {
      if (!name.startsWith('group:') || name.length <= 6) ctx.fail(keyNode, `group name ${JSON.stringify(name)} must start with "group:"`);
      const members: string[] = [];
      for (const [m, mNode] of strList(ctx, value, `members of ${name}`)) {
        if (m.startsWith('group:')) ctx.fail(mNode, `group ${JSON.stringify(name)} cannot contain another group (${JSON.stringify(m)})`);
        if (m.startsWith('tag:') || m.startsWith('autogroup:')) ctx.fail(mNode, `group ${JSON.stringify(name)}: members must be users, not ${JSON.stringify(m)}`);
        members.push(m.startsWith('user:') ? m.slice(5) : m);
      }
      policy.groups.set(name, members);
    }
  }
  const hostsNode = sections.get('hosts');
  if (hostsNode) {
    for (const [name, value, keyNode] of props(ctx, hostsNode, 'hosts')) {
      if (name.includes(':') || name.includes('@') || name === '*') ctx.fail(keyNode, `invalid host name ${JSON.stringify(name)}`);
      const addr = str(ctx, value, `host ${name}`);
      const range = parseRange(addr);
      if (!range || addr.includes('-')) ctx.fail(value, `host ${JSON.stringify(name)}: ${JSON.stringify(addr)} is not an IP address or CIDR prefix`);
      policy.hosts.set(name, { text: addr, range });
    }
  }
  const tagOwnersNode = sections.get('tagOwners');
  if (tagOwnersNode) {
    for (const [name, value, keyNode] of props(ctx, tagOwnersNode, 'tagOwners')) {
      if (!name.startsWith('tag:') || name.length <= 4) ctx.fail(keyNode, `tag name ${JSON.stringify(name)} must start with "tag:"`);
      policy.tagOwners.set(name, strList(ctx, value, `owners of ${name}`).map(([s]) => s));
    }
    for (const [name, value] of props(ctx, tagOwnersNode, 'tagOwners')) {
      for (const [owner, oNode] of strList(ctx, value, `owners of ${name}`)) {
        if (owner.startsWith('tag:') && !policy.tagOwners.has(owner)) ctx.fail(oNode, `tag not found: ${JSON.stringify(owner)}`);
        if (owner.startsWith('group:') && !policy.groups.has(owner)) ctx.fail(oNode, `group not found: ${JSON.stringify(owner)}`);
        if (owner.startsWith('autogroup:') && !(owner in AUTOGROUPS)) ctx.fail(oNode, `unknown autogroup ${JSON.stringify(owner)}`);
      }
    }
  }
  const posturesNode = sections.get('postures');
  if (posturesNode) {
    for (const [name, value, keyNode] of props(ctx, posturesNode, 'postures')) {
      if (!name.startsWith('posture:')) ctx.fail(keyNode, `posture name ${JSON.stringify(name)} must start with "posture:"`);
      const conds = strList(ctx, value, name).map(([expr, eNode]) => {
        const c = parsePostureCondition(expr);
        if (typeof c === 'string') ctx.fail(eNode, `${name}: ${c}`);
        return c;
      });
      policy.postures.set(name, conds);
    }
  }
  const postureRefs = (node: Node, what: string): string[] =>
    strList(ctx, node, what).map(([p, pNode]) => {
      if (!policy.postures.has(p)) ctx.fail(pNode, `posture not found: ${JSON.stringify(p)}`);
      return p;
    });
  const dspNode = sections.get('defaultSrcPosture');
  if (dspNode) policy.defaultSrcPosture = postureRefs(dspNode, 'defaultSrcPosture');

  const aaNode = sections.get('autoApprovers');
  if (aaNode) {
    for (const [key, value, keyNode] of props(ctx, aaNode, 'autoApprovers')) {
      if (key === 'routes') {
        for (const [route, owners, rNode] of props(ctx, value, 'autoApprovers.routes')) {
          if (!parseRange(route) || route.includes('-')) ctx.fail(rNode, `autoApprovers: ${JSON.stringify(route)} is not a CIDR prefix`);
          policy.autoApprovers.routes[route] = strList(ctx, owners, `approvers of ${route}`).map(([s, sNode]) => {
            if (s.startsWith('tag:') && !policy.tagOwners.has(s)) ctx.fail(sNode, `tag not found: ${JSON.stringify(s)}`);
            if (s.startsWith('group:') && !policy.groups.has(s)) ctx.fail(sNode, `group not found: ${JSON.stringify(s)}`);
            return s;
          });
        }
      } else if (key === 'exitNode') {
        policy.autoApprovers.exitNode = strList(ctx, value, 'autoApprovers.exitNode').map(([s]) => s);
      } else {
        ctx.fail(keyNode, `unknown field ${JSON.stringify(key)} in autoApprovers`);
      }
    }
  }

  /** Resolves the text of one selector; `side` words the errors the way Tailscale does. */
  const selector = (textIn: string, node: Node, side: 'src' | 'dst' | 'test'): Sel => {
    const t = textIn;
    if (t === '*') return { k: 'all' };
    if (t.startsWith('autogroup:')) {
      const s = AUTOGROUPS[t];
      if (!s) ctx.fail(node, `unknown autogroup ${JSON.stringify(t)}`);
      if (s.k === 'self' && side === 'src') ctx.fail(node, '"autogroup:self" not valid on the src side of a rule');
      if (s.k === 'internet' && side === 'src') ctx.fail(node, '"autogroup:internet" not valid on the src side of a rule');
      return s;
    }
    if (t.startsWith('group:')) {
      if (!policy.groups.has(t)) ctx.fail(node, side === 'dst' ? `dst=${JSON.stringify(t)}: group not found: ${JSON.stringify(t)}` : `${side}=group not found: ${JSON.stringify(t)}`);
      return { k: 'group', name: t };
    }
    if (t.startsWith('tag:')) {
      if (!policy.tagOwners.has(t)) ctx.fail(node, side === 'dst' ? `dst=${JSON.stringify(t)}: tag not found: ${JSON.stringify(t)}` : `${side}=tag not found: ${JSON.stringify(t)}`);
      return { k: 'tag', name: t };
    }
    if (t.startsWith('user:*@')) return { k: 'domain', domain: t.slice(7).toLowerCase() };
    if (t.startsWith('user:')) return { k: 'user', email: t.slice(5).toLowerCase() };
    if (t.includes('@')) return { k: 'user', email: t.toLowerCase() };
    const host = policy.hosts.get(t);
    if (host) return { k: 'prefix', text: host.text, range: host.range };
    const range = parseRange(t);
    if (range) return { k: 'prefix', text: t, range };
    return ctx.fail(node, side === 'dst' ? `dst=${JSON.stringify(t)}: host not found: ${JSON.stringify(t)}` : `${side}=host not found: ${JSON.stringify(t)}`);
  };

  const selectors = (node: Node, what: string, side: 'src' | 'dst'): Selector[] =>
    strList(ctx, node, what).map(([t, n]) => ({ text: t, at: ctx.pos(n.offset), sel: selector(t, n, side) }));

  /** "autogroup:self" may only be paired with sources that are users (users, groups, member, and "*" in ACLs). */
  const checkSelfSources = (src: Selector[], dst: { sel: Sel }[], node: Node, allowStar: boolean): void => {
    if (!dst.some((d) => d.sel.k === 'self')) return;
    for (const s of src) {
      const k = s.sel.k;
      const ok = k === 'user' || k === 'domain' || k === 'group' || k === 'member' || k === 'role' || (allowStar && k === 'all');
      if (!ok) ctx.fail(node, 'autogroup:self can only be used with users, groups, or supported autogroups');
    }
  };

  const aclsNode = sections.get('acls');
  if (aclsNode) {
    if (aclsNode.type !== 'array') ctx.fail(aclsNode, 'acls must be a list');
    for (const ruleNode of aclsNode.children ?? []) {
      let action: string | undefined;
      let srcNode: Node | undefined;
      let dstNode: Node | undefined;
      let protoNode: Node | undefined;
      let postureNode: Node | undefined;
      for (const [key, value, keyNode] of props(ctx, ruleNode, 'an acls entry')) {
        switch (key) {
          case 'action': case 'Action': action = str(ctx, value, 'action'); if (action !== 'accept') ctx.fail(value, `action=${JSON.stringify(action)} is not supported (only "accept": access is denied by default)`); break;
          case 'src': case 'Users': case 'users': srcNode = value; break;
          case 'dst': case 'Ports': case 'ports': dstNode = value; break;
          case 'proto': case 'Proto': protoNode = value; break;
          case 'srcPosture': postureNode = value; break;
          default: ctx.fail(keyNode, `unknown field ${JSON.stringify(key)} in acls entry`);
        }
      }
      if (action === undefined) ctx.fail(ruleNode, 'acls entry: missing "action" (use "accept")');
      if (!srcNode) ctx.fail(ruleNode, 'acls entry: missing "src"');
      if (!dstNode) ctx.fail(ruleNode, 'acls entry: missing "dst"');
      const src = selectors(srcNode, 'src', 'src');
      const dst: DstEntry[] = strList(ctx, dstNode, 'dst').map(([t, n]) => {
        let alias: string;
        let portText: string;
        if (t.startsWith('[')) {
          const close = t.indexOf(']:');
          if (close < 0) ctx.fail(n, `dst=${JSON.stringify(t)}: missing port after "]"`);
          alias = t.slice(1, close);
          portText = t.slice(close + 2);
        } else {
          const colon = t.lastIndexOf(':');
          if (colon < 0) ctx.fail(n, `dst=${JSON.stringify(t)}: missing port (write "${t}:*" for every port)`);
          alias = t.slice(0, colon);
          portText = t.slice(colon + 1);
        }
        const ports = parsePorts(portText, false);
        if (typeof ports === 'string') ctx.fail(n, `dst=${JSON.stringify(t)}: ${ports}`);
        const sel = selector(alias, n, 'dst');
        if (sel.k === 'danger') ctx.fail(n, 'cannot use autogroup:danger-all as a dst');
        return { text: alias, at: ctx.pos(n.offset), sel, ports };
      });
      checkSelfSources(src, dst, ruleNode, true);
      let protos: number[] | undefined;
      if (protoNode) {
        const p = protoNode.type === 'number' ? String(protoNode.value) : str(ctx, protoNode, 'proto');
        const n = parseProto(p);
        if (n === null) ctx.fail(protoNode, `unknown protocol ${JSON.stringify(p)}`);
        protos = [n];
      }
      const at = ctx.pos(ruleNode.offset);
      policy.acls.push({
        kind: 'acl', line: at.line, at, src, dst, ...(protos ? { protos } : {}),
        srcPosture: postureNode ? postureRefs(postureNode, 'srcPosture') : [],
      });
    }
  }

  const grantsNode = sections.get('grants');
  if (grantsNode) {
    if (grantsNode.type !== 'array') ctx.fail(grantsNode, 'grants must be a list');
    for (const gNode of grantsNode.children ?? []) {
      let srcNode: Node | undefined;
      let dstNode: Node | undefined;
      let ipNode: Node | undefined;
      let appNode: Node | undefined;
      let viaNode: Node | undefined;
      let postureNode: Node | undefined;
      for (const [key, value, keyNode] of props(ctx, gNode, 'a grants entry')) {
        switch (key) {
          case 'src': srcNode = value; break;
          case 'dst': dstNode = value; break;
          case 'ip': ipNode = value; break;
          case 'app': appNode = value; break;
          case 'via': viaNode = value; break;
          case 'srcPosture': postureNode = value; break;
          default: ctx.fail(keyNode, `unknown field ${JSON.stringify(key)} in grants entry`);
        }
      }
      if (!srcNode) ctx.fail(gNode, 'grants entry: missing "src"');
      if (!dstNode) ctx.fail(gNode, 'grants entry: missing "dst"');
      const ip: IpSpec[] = ipNode
        ? strList(ctx, ipNode, 'ip').map(([t, n]) => {
            if (t === '*') return { ports: [portRange(0, 65535)] };
            const colon = t.indexOf(':');
            let protos: number[] | undefined;
            let portText = t;
            if (colon >= 0) {
              const p = parseProto(t.slice(0, colon));
              if (p === null) ctx.fail(n, `ip ${JSON.stringify(t)}: unknown protocol ${JSON.stringify(t.slice(0, colon))}`);
              protos = [p];
              portText = t.slice(colon + 1);
            }
            const ports = parsePorts(portText, true);
            if (typeof ports === 'string') ctx.fail(n, ports);
            return { ...(protos ? { protos } : {}), ports };
          })
        : [];
      let app: Record<string, unknown[]> | undefined;
      if (appNode) {
        app = {};
        for (const [cap, value, capNode] of props(ctx, appNode, 'app')) {
          if (cap.startsWith('tailscale.com/') && !TAILSCALE_CAPS.has(cap)) ctx.fail(capNode, 'capability name must not be in the tailscale.com domain');
          if (!/^[a-z0-9.-]+\.[a-z]+\/\S+$/i.test(cap)) ctx.fail(capNode, `capability name must have the form {domain}/{path} (got ${JSON.stringify(cap)}, e.g. "example.com/cap/name")`);
          if (value.type !== 'array') ctx.fail(value, `app ${JSON.stringify(cap)}: the value must be a list of JSON objects`);
          app[cap] = nodeValue(value) as unknown[];
        }
        if (Object.keys(app).length === 0) app = undefined;
      }
      if (ip.length === 0 && !app) ctx.fail(gNode, 'ip and app can not both be empty');
      const src = selectors(srcNode, 'src', 'src');
      const dst = strList(ctx, dstNode, 'dst').map(([t, n]): Selector => {
        const sel = selector(t, n, 'dst');
        if (sel.k === 'danger') ctx.fail(n, 'cannot use autogroup:danger-all as a dst');
        if (sel.k === 'prefix' && isFullRange(sel.range)) ctx.fail(n, `dst ${JSON.stringify(t)}: to allow all IP addresses, use "*" or "autogroup:internet"`);
        if (sel.k === 'internet' && app) ctx.fail(n, 'cannot use app grants with autogroup:internet');
        return { text: t, at: ctx.pos(n.offset), sel };
      });
      checkSelfSources(src, dst, gNode, false);
      const via = viaNode
        ? strList(ctx, viaNode, 'via').map(([t, n]) => {
            if (!t.startsWith('tag:')) ctx.fail(n, 'via can only be a tag');
            if (!policy.tagOwners.has(t)) ctx.fail(n, `tag ${JSON.stringify(t)} not found`);
            return t;
          })
        : [];
      const at = ctx.pos(gNode.offset);
      policy.grants.push({
        kind: 'grant', line: at.line, at, src, dst, ip, ...(app ? { app } : {}), via,
        srcPosture: postureNode ? postureRefs(postureNode, 'srcPosture') : [],
      });
    }
  }

  // The tests: the file's own, or (a validation of tests against the stored policy) those of `testsText`,
  // a list whose positions are its own.
  let tctx: Ctx = ctx;
  let testsNode = sections.get('tests');
  if (testsText !== undefined) {
    tctx = new Ctx(testsText);
    testsNode = parseJsonTree(tctx);
    if (testsNode?.type !== 'array') tctx.fail(testsNode, 'the tests must be a JSON list');
  }
  if (testsNode) {
    if (testsNode.type !== 'array') ctx.fail(testsNode, 'tests must be a list');
    for (const tNode of testsNode.children ?? []) {
      let src: string | undefined;
      let srcNode: Node | undefined;
      let protos: number[] | undefined;
      let accept: string[] = [];
      let deny: string[] = [];
      let srcPostureAttrs: Record<string, PostureValue> | undefined;
      for (const [key, value, keyNode] of props(tctx, tNode, 'a tests entry')) {
        switch (key) {
          case 'src': case 'User': case 'user': src = str(tctx, value, 'src'); srcNode = value; break;
          case 'proto': case 'Proto': {
            const p = value.type === 'number' ? String(value.value) : str(tctx, value, 'proto');
            const n = parseProto(p);
            if (n === null) tctx.fail(value, `unknown protocol ${JSON.stringify(p)}`);
            protos = [n];
            break;
          }
          case 'accept': case 'Allow': case 'allow': accept = strList(tctx, value, 'accept').map(([t]) => t); break;
          case 'deny': case 'Deny': deny = strList(tctx, value, 'deny').map(([t]) => t); break;
          case 'srcPostureAttrs': srcPostureAttrs = postureAttrs(tctx, value); break;
          default: tctx.fail(keyNode, `unknown field ${JSON.stringify(key)} in tests entry`);
        }
      }
      let srcSel: Sel | null = null;
      if (src && srcNode) {
        try {
          srcSel = selector(src, srcNode, 'test');
        } catch (err) {
          if (!(err instanceof PolicyError)) throw err;
        }
      }
      const at = tctx.pos(tNode.offset);
      policy.tests.push({ line: at.line, at, src: src ?? '', srcSel, ...(protos ? { protos } : {}), ...(srcPostureAttrs ? { srcPostureAttrs } : {}), accept, deny });
    }
  }
  return policy;
}

/** A test destination "host:port" ("[v6]:port" too) split; port NaN unless it is one number 0-65535. */
export function splitTestDst(d: string): { alias: string; port: number } {
  const colon = d.lastIndexOf(':');
  const portText = colon < 0 ? '' : d.slice(colon + 1);
  const port = /^\d{1,5}$/.test(portText) && Number(portText) <= 65535 ? Number(portText) : NaN;
  return { alias: (colon < 0 ? d : d.slice(0, colon)).replace(/^\[(.*)\]$/, '$1'), port };
}

function nodeValue(node: Node): unknown {
  switch (node.type) {
    case 'object': {
      const o: Record<string, unknown> = {};
      for (const p of node.children ?? []) o[p.children![0]!.value as string] = nodeValue(p.children![1]!);
      return o;
    }
    case 'array':
      return (node.children ?? []).map(nodeValue);
    default:
      return node.value;
  }
}
