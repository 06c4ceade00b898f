import { describe, expect, it } from 'vitest';
import { parsePolicy, PolicyError } from './index.js';
import { MAX_NESTING, parsePorts } from './parse.js';

/** The PolicyError a text is refused with. */
function refusal(text: string): PolicyError {
  try {
    parsePolicy(text);
  } catch (err) {
    if (err instanceof PolicyError) return err;
    throw err;
  }
  throw new Error('policy was accepted');
}

const DEFS = `
  "groups": {"group:eng": ["alice@example.com", "bob@example.com"]},
  "hosts": {"db": "10.1.2.3", "lan": "10.1.0.0/16"},
  "tagOwners": {"tag:web": ["group:eng"], "tag:ci": ["tag:web"]},
`;

describe('parsePolicy: HuJSON', () => {
  it('accepts comments and trailing commas', () => {
    const p = parsePolicy(`{
      // who may do what
      ${DEFS}
      "acls": [
        /* web */ {"action": "accept", "src": ["group:eng",], "dst": ["tag:web:80,443",],},
      ],
    }`);
    expect(p.acls).toHaveLength(1);
    expect(p.acls[0]!.line).toBe(9);
    expect(p.acls[0]!.dst[0]!.ports).toEqual([{ First: 80, Last: 80 }, { First: 443, Last: 443 }]);
  });

  it('names line and column of a syntax error', () => {
    const e = refusal('{\n  "acls": [\n    {"action": "accept" "src": []}\n  ]\n}');
    expect(e.line).toBe(3);
    expect(e.column).toBe(25);
    expect(e.message).toMatch(/^3:25: invalid HuJSON: CommaExpected/);
  });

  it('refuses unknown fields by name, at their position', () => {
    const e = refusal('{\n  "acl": []\n}');
    expect(e.reason).toBe('unknown field "acl"');
    expect([e.line, e.column]).toEqual([2, 3]);
    const r = refusal('{"acls": [\n {"action": "accept", "src": ["*"], "dst": ["*:*"], "port": 1}]}');
    expect(r.reason).toBe('unknown field "port" in acls entry');
    expect(r.line).toBe(2);
  });

  it('accepts only the accept action', () => {
    const e = refusal('{"acls": [{"action": "deny", "src": ["*"], "dst": ["*:*"]}]}');
    expect(e.reason).toMatch(/^action="deny" is not supported \(only "accept"/);
    expect(e.column).toBe(22);
  });

  it('reads the legacy spelling', () => {
    const p = parsePolicy(`{
      "Groups": {"group:ops": ["carol@example.com"]},
      "Hosts": {"nas": "100.64.0.9"},
      "TagOwners": {"tag:srv": ["group:ops"]},
      "ACLs": [{"Action": "accept", "Users": ["group:ops"], "Ports": ["tag:srv:22", "nas:445"]}],
      "Tests": [{"User": "carol@example.com", "Allow": ["tag:srv:22"], "Deny": ["tag:srv:80"]}],
    }`);
    expect(p.acls[0]!.src.map((s) => s.sel)).toEqual([{ k: 'group', name: 'group:ops' }]);
    expect(p.acls[0]!.dst.map((d) => d.sel.k)).toEqual(['tag', 'prefix']);
    expect(p.tests[0]).toMatchObject({ src: 'carol@example.com', accept: ['tag:srv:22'], deny: ['tag:srv:80'] });
  });
});

describe('parsePolicy: selectors', () => {
  const sel = (s: string, side: 'src' | 'dst' = 'src') => {
    const p = parsePolicy(`{${DEFS} "acls": [{"action": "accept", "src": [${side === 'src' ? JSON.stringify(s) : '"*"'}], "dst": [${side === 'dst' ? JSON.stringify(s + ':22') : '"*:*"'}]}]}`);
    return side === 'src' ? p.acls[0]!.src[0]!.sel : p.acls[0]!.dst[0]!.sel;
  };

  it('resolves every kind', () => {
    expect(sel('*')).toEqual({ k: 'all' });
    expect(sel('Alice@Example.com')).toEqual({ k: 'user', email: 'alice@example.com' });
    expect(sel('user:*@example.com')).toEqual({ k: 'domain', domain: 'example.com' });
    expect(sel('group:eng')).toEqual({ k: 'group', name: 'group:eng' });
    expect(sel('tag:ci')).toEqual({ k: 'tag', name: 'tag:ci' });
    expect(sel('db')).toMatchObject({ k: 'prefix', text: '10.1.2.3' });
    expect(sel('lan')).toMatchObject({ k: 'prefix', text: '10.1.0.0/16' });
    expect(sel('100.64.0.0/10')).toMatchObject({ k: 'prefix', text: '100.64.0.0/10' });
    expect(sel('fd7a:115c:a1e0::1')).toMatchObject({ k: 'prefix' });
    expect(sel('autogroup:member')).toEqual({ k: 'member' });
    expect(sel('autogroup:tagged')).toEqual({ k: 'tagged' });
    expect(sel('autogroup:shared')).toEqual({ k: 'shared' });
    expect(sel('autogroup:danger-all')).toEqual({ k: 'danger' });
    expect(sel('autogroup:admin')).toEqual({ k: 'role', role: 'admin' });
    expect(sel('autogroup:it-admin')).toEqual({ k: 'role', role: 'it-admin' });
    expect(sel('autogroup:self', 'dst')).toEqual({ k: 'self' });
    expect(sel('autogroup:internet', 'dst')).toEqual({ k: 'internet' });
    expect(sel('fd7a:115c:a1e0::1', 'dst')).toMatchObject({ k: 'prefix', text: 'fd7a:115c:a1e0::1' });
  });

  it('refuses undefined names with Tailscale\'s messages', () => {
    expect(refusal(`{${DEFS} "acls": [{"action": "accept", "src": ["tag:nope"], "dst": ["*:*"]}]}`).reason).toBe('src=tag not found: "tag:nope"');
    expect(refusal(`{${DEFS} "acls": [{"action": "accept", "src": ["*"], "dst": ["tag:nope:22"]}]}`).reason).toBe('dst="tag:nope": tag not found: "tag:nope"');
    expect(refusal(`{${DEFS} "acls": [{"action": "accept", "src": ["group:nope"], "dst": ["*:*"]}]}`).reason).toBe('src=group not found: "group:nope"');
    expect(refusal(`{${DEFS} "acls": [{"action": "accept", "src": ["nohost"], "dst": ["*:*"]}]}`).reason).toBe('src=host not found: "nohost"');
    expect(refusal(`{${DEFS} "acls": [{"action": "accept", "src": ["autogroup:nope"], "dst": ["*:*"]}]}`).reason).toBe('unknown autogroup "autogroup:nope"');
    expect(refusal('{"tagOwners": {"tag:a": ["tag:b"]}}').reason).toBe('tag not found: "tag:b"');
  });

  it('refuses autogroup:self as a source, and with sources that are not users', () => {
    expect(refusal('{"acls": [{"action": "accept", "src": ["autogroup:self"], "dst": ["*:*"]}]}').reason).toBe('"autogroup:self" not valid on the src side of a rule');
    expect(refusal(`{${DEFS} "acls": [{"action": "accept", "src": ["tag:web"], "dst": ["autogroup:self:*"]}]}`).reason).toBe('autogroup:self can only be used with users, groups, or supported autogroups');
    expect(refusal('{"grants": [{"src": ["*"], "dst": ["autogroup:self"], "ip": ["*"]}]}').reason).toBe('autogroup:self can only be used with users, groups, or supported autogroups');
    expect(() => parsePolicy('{"acls": [{"action": "accept", "src": ["*"], "dst": ["autogroup:self:*"]}]}')).not.toThrow();
  });

  it('refuses bad ports', () => {
    expect(refusal(`{${DEFS} "acls": [{"action": "accept", "src": ["*"], "dst": ["tag:web:ssh"]}]}`).reason).toBe('dst="tag:web:ssh": port range "ssh": invalid first integer');
    expect(refusal('{"acls": [{"action": "accept", "src": ["*"], "dst": ["autogroup:self"]}]}').reason).toBe('dst="autogroup:self": port range "self": invalid first integer');
    expect(refusal('{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["tcp:0"]}]}').reason).toBe('port range "0": first port must be >0, or use \'*\' for wildcard');
    expect(refusal('{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["icmp"]}]}').reason).toBe('port range "icmp": invalid first integer');
    expect(parsePorts('443-80', false)).toMatch(/first port is greater than last/);
    expect(parsePorts('70000', false)).toMatch(/out of range/);
    expect(parsePorts('22,80-90,*', false)).toMatch(/invalid first integer/);
  });
});

describe('parsePolicy: grants', () => {
  it('reads ip, app and via', () => {
    const p = parsePolicy(`{${DEFS} "grants": [
      {"src": ["group:eng"], "dst": ["lan"], "ip": ["tcp:22", "udp:53", "80-90", "*"], "via": ["tag:web"]},
      {"src": ["*"], "dst": ["tag:web"], "app": {"example.com/cap/x": [{"a": 1}]}},
    ]}`);
    expect(p.grants[0]!.ip).toEqual([
      { protos: [6], ports: [{ First: 22, Last: 22 }] },
      { protos: [17], ports: [{ First: 53, Last: 53 }] },
      { ports: [{ First: 80, Last: 90 }] },
      { ports: [{ First: 0, Last: 65535 }] },
    ]);
    expect(p.grants[0]!.via).toEqual(['tag:web']);
    expect(p.grants[1]!.app).toEqual({ 'example.com/cap/x': [{ a: 1 }] });
  });

  it('refuses what Tailscale refuses', () => {
    expect(refusal('{"grants": [{"src": ["*"], "dst": ["*"]}]}').reason).toBe('ip and app can not both be empty');
    expect(refusal('{"grants": [{"src": ["*"], "dst": ["*"], "app": {}}]}').reason).toBe('ip and app can not both be empty');
    expect(refusal('{"grants": [{"src": ["*"], "dst": ["*"], "app": {"tailscale.com/cap/relay-target": [{}]}}]}').reason).toBe('capability name must not be in the tailscale.com domain');
    expect(refusal('{"grants": [{"src": ["*"], "dst": ["*"], "app": {"https://example.com/cap/x": [{}]}}]}').reason).toMatch(/^capability name must have the form \{domain\}\/\{path\}/);
    expect(refusal('{"grants": [{"src": ["*"], "dst": ["autogroup:danger-all"], "ip": ["*"]}]}').reason).toBe('cannot use autogroup:danger-all as a dst');
    expect(refusal('{"grants": [{"src": ["*"], "dst": ["autogroup:internet"], "app": {"example.com/cap/x": [{}]}}]}').reason).toBe('cannot use app grants with autogroup:internet');
    expect(refusal('{"grants": [{"src": ["*"], "dst": ["0.0.0.0/0"], "ip": ["*"]}]}').reason).toBe('dst "0.0.0.0/0": to allow all IP addresses, use "*" or "autogroup:internet"');
    expect(refusal('{"grants": [{"src": ["*"], "dst": ["10.0.0.0/8"], "ip": ["*"], "via": ["autogroup:tagged"]}]}').reason).toBe('via can only be a tag');
    expect(refusal('{"grants": [{"src": ["*"], "dst": ["10.0.0.0/8"], "ip": ["*"], "via": ["tag:x"]}]}').reason).toBe('tag "tag:x" not found');
  });

  it('refuses a bad via with its line and column', () => {
    const at = (text: string) => {
      const e = refusal(text);
      return [e.reason, e.line, e.column];
    };
    const head = '{"tagOwners": {"tag:r": []},\n "grants": [{"src": ["*"], "dst": ["10.0.0.0/8"], "ip": ["*"],\n   "via": ';
    expect(at(`${head}["tag:r", "group:eng"]}]}`)).toEqual(['via can only be a tag', 3, 21]);
    expect(at(`${head}["tag:r", "tag:gone"]}]}`)).toEqual(['tag "tag:gone" not found', 3, 21]);
    expect(at(`${head}"tag:r"}]}`)).toEqual(['via must be a list of strings', 3, 11]);
    expect(at(`${head}[7]}]}`)).toEqual(['via must be a list of strings', 3, 12]);
    expect(parsePolicy(`${head}["tag:r"]}]}`).grants[0]!.via).toEqual(['tag:r']);
  });

  it('reads postures and checks srcPosture references', () => {
    const p = parsePolicy(`{"postures": {"posture:linux": ["node:os == 'linux'", "node:tsVersion >= '1.60'"]},
      "grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"], "srcPosture": ["posture:linux"]}]}`);
    expect(p.postures.get('posture:linux')).toHaveLength(2);
    expect(refusal('{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"], "srcPosture": ["posture:x"]}]}').reason).toBe('posture not found: "posture:x"');
    expect(refusal(`{"postures": {"posture:a": ["node:os === 'linux'"]}}`).reason).toMatch(/posture:a: posture condition "node:os === .linux.": bad value/);
  });
});

describe('parsePolicy: any input', () => {
  it('either parses or throws a PolicyError, never anything else', async () => {
    const fc = (await import('fast-check')).default;
    const selector = fc.constantFrom('*', 'tag:web', 'group:eng', 'alice@example.com', 'autogroup:self', 'autogroup:member', 'db', '10.0.0.0/8', 'nope', '');
    const rule = fc.record({
      action: fc.constantFrom('accept', 'deny', 1),
      src: fc.array(selector, { maxLength: 3 }),
      dst: fc.array(fc.tuple(selector, fc.constantFrom(':22', ':*', ':80-90', ':x', '')).map(([a, b]) => a + b), { maxLength: 3 }),
    }, { requiredKeys: [] });
    const doc = fc.record({ acls: fc.array(rule, { maxLength: 3 }), tagOwners: fc.constant({ 'tag:web': [] }), groups: fc.constant({ 'group:eng': ['alice@example.com'] }) }, { requiredKeys: [] });
    const check = (text: string): void => {
      try {
        parsePolicy(text);
      } catch (err) {
        expect(err).toBeInstanceOf(PolicyError);
        const e = err as PolicyError;
        if (e.line !== undefined) expect(e.message.startsWith(`${e.line}:${e.column}: `)).toBe(true);
      }
    };
    fc.assert(fc.property(doc, (d) => check(JSON.stringify(d))), { numRuns: 300 });
    fc.assert(fc.property(fc.string(), (t) => check(t)), { numRuns: 300 });
    fc.assert(fc.property(fc.jsonValue(), (v) => check(JSON.stringify(v))), { numRuns: 300 });
  });

  it('refuses nesting deeper than MAX_NESTING with a clear error, not a stack overflow', () => {
    const deep = (text: string) => {
      try {
        parsePolicy(text);
      } catch (err) {
        return err;
      }
      return undefined;
    };
    const megabyte = deep('['.repeat(1 << 20));
    expect(megabyte).toBeInstanceOf(PolicyError);
    expect((megabyte as PolicyError).message).toBe(`1:${MAX_NESTING + 1}: lists and objects nest deeper than ${MAX_NESTING} levels`);
    const inAcls = deep(`{\n"acls": ${'['.repeat(5000)}${']'.repeat(5000)}}`);
    expect((inAcls as PolicyError).message).toMatch(/^2:\d+: lists and objects nest deeper than 100 levels$/);
    // Brackets inside strings and comments are not nesting; legitimate nesting within the bound parses.
    expect(() => parsePolicy(`{"groups": {"group:x": ["${'['.repeat(500)}@example.com"]} // ${'{'.repeat(500)}\n}`)).not.toThrow(/nest/);
    const app = { 'example.com/cap/x': [JSON.parse('['.repeat(50) + ']'.repeat(50))] };
    expect(() => parsePolicy(JSON.stringify({ tagOwners: { 'tag:a': [] }, grants: [{ src: ['*'], dst: ['tag:a'], app }] }))).not.toThrow();
  });
});
