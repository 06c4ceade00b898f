import { describe, expect, it } from 'vitest';
import { checkPolicy, MAX_TEST_CHECKS, MAX_TEST_DESTINATIONS, parsePolicy, PolicyError, runPolicyTests } from './index.js';
import { heaviestAcceptedPolicy } from '../../scripts/heavy-policy.js';

const BASE = `
  "groups": {"group:eng": ["alice@example.com", "bob@example.com"]},
  "hosts": {"db": "100.70.0.5", "lan": "10.1.0.0/16"},
  "tagOwners": {"tag:web": ["group:eng"], "tag:prod": ["group:eng"]},
  "acls": [
    {"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443", "lan:22"]},
    {"action": "accept", "src": ["tag:web"], "dst": ["tag:prod:5432", "db:5432"]},
    {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
  ],
  "grants": [{"src": ["carol@example.com"], "dst": ["tag:web"], "ip": ["udp:53"]}],`;

describe('policy tests', () => {
  it('pass when every accept is reachable and every deny is not', () => {
    const p = parsePolicy(`{${BASE}
      "tests": [
        {"src": "alice@example.com", "accept": ["tag:web:443", "10.1.2.3:22", "alice@example.com:8080"], "deny": ["tag:web:80", "tag:prod:5432", "bob@example.com:22"]},
        {"src": "group:eng", "accept": ["tag:web:443"]},
        {"src": "tag:web", "accept": ["tag:prod:5432", "db:5432", "100.70.0.5:5432", "[100.70.0.5]:5432"], "deny": ["tag:prod:22"]},
        {"src": "carol@example.com", "proto": "udp", "accept": ["tag:web:53"]},
        {"src": "carol@example.com", "deny": ["tag:web:53"]},
      ]}`);
    expect(runPolicyTests(p)).toEqual([]);
  });

  it('report each failure the way Tailscale words it, and refuse the policy', () => {
    const text = `{${BASE}
      "tests": [
        {"src": "alice@example.com", "accept": ["tag:web:443"]},
        {"src": "carol@example.com", "accept": ["tag:web:443"], "deny": ["tag:web:53"], "proto": "udp"},
      ]}`;
    const failures = runPolicyTests(parsePolicy(text));
    expect(failures).toEqual([
      {
        src: 'carol@example.com', line: 13, failedAccept: ['tag:web:443'], failedDeny: ['tag:web:53'],
        message: 'src "carol@example.com" (line 13): expected accept "tag:web:443", got drop; expected drop "tag:web:53", got accept',
      },
    ]);
    let err: unknown;
    try {
      checkPolicy(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyError);
    expect((err as PolicyError).reason).toMatch(/^test\(s\) failed: src "carol@example.com"/);
    expect((err as PolicyError).line).toBe(13);
    expect((err as PolicyError).failures).toHaveLength(1);
  });

  it('use roles from the topology for role autogroups', () => {
    const text = `{"tagOwners": {"tag:web": []}, "acls": [{"action": "accept", "src": ["autogroup:admin"], "dst": ["tag:web:22"]}],
      "tests": [{"src": "ann@example.com", "accept": ["tag:web:22"]}]}`;
    expect(runPolicyTests(parsePolicy(text))).toHaveLength(1);
    expect(runPolicyTests(parsePolicy(text), { users: [{ name: 'ann', email: 'ann@example.com', role: 'admin' }], nodes: {} })).toEqual([]);
  });

  it('fail, like Tailscale, when a test names nothing testable (the policy still parses)', () => {
    const run = (tests: string) => runPolicyTests(parsePolicy(`{${BASE} "tests": ${tests}}`)).map((f) => f.message.replace(/^src .*? \(line \d+\): /, ''));
    expect(run('[{"src": "alice@example.com", "accept": ["tag:web"]}]')).toEqual(['"tag:web": needs host:port with one port number, e.g. "tag:web:443"']);
    expect(run('[{"src": "alice@example.com", "accept": ["tag:web:80-90"]}]')).toEqual(['"tag:web:80-90": needs host:port with one port number, e.g. "tag:web:443"']);
    expect(run('[{"src": "alice@example.com", "accept": ["tag:nope:22", "group:nope:22", "nohost:22", "lan:22", "*:22"]}]')).toEqual([
      '"tag:nope:22": tag "tag:nope" not found; "group:nope:22": group "group:nope" not found; "nohost:22": host "nohost" not found; ' +
      '"lan:22": host "lan" is a prefix; a test names one address; "*:22": a test names one destination, not "*"',
    ]);
    expect(run('[{"src": "tag:nope", "accept": ["tag:web:443"]}]')).toEqual(['src "tag:nope" not found']);
    expect(run('[{"accept": ["tag:web:443"]}]')).toEqual(['missing src']);
    expect(run('[{"src": "alice@example.com"}]')).toEqual(['the test has neither accept nor deny']);
    expect(run('[{"src": "tag:web", "accept": ["autogroup:self:22"]}]')).toEqual(['"autogroup:self:22": autogroup:self needs a user or group as the src']);
    expect(run('[{"src": "alice@example.com", "deny": ["autogroup:self:22"]}]')).toEqual(['expected drop "autogroup:self:22", got accept']);
    expect(() => parsePolicy('{"tests": [{"src": "a@b.c", "accept": ["x@y.z:22"], "bogus": 1}]}')).toThrow(/unknown field "bogus" in tests entry/);
  });

  it('check users against the topology when there is one', () => {
    const topo = { users: [{ name: 'alice', email: 'alice@example.com' }], nodes: {} };
    const p = parsePolicy(`{${BASE} "tests": [{"src": "ghost@example.com", "accept": ["tag:web:443"]}, {"src": "alice@example.com", "accept": ["ghost@example.com:22"]}]}`);
    expect(runPolicyTests(p, topo).map((f) => f.message.replace(/^src .*? \(line \d+\): /, ''))).toEqual([
      'user "ghost@example.com" not found',
      '"ghost@example.com:22": user "ghost@example.com" not found',
    ]);
  });

  it('bound the work one policy may ask for, and say why a policy asks too much', () => {
    expect(runPolicyTests(parsePolicy(heaviestAcceptedPolicy()))).toEqual([]);
    expect(() => runPolicyTests(parsePolicy(heaviestAcceptedPolicy(true)))).toThrow(
      new PolicyError(`the policy's tests ask for too much work: ${MAX_TEST_DESTINATIONS + 1} destinations, at most ${MAX_TEST_DESTINATIONS} are allowed; split the tests across policy changes or name fewer destinations`),
    );
    // Few destinations, but a large group tested against itself: 400 × 400 checks.
    const members = Array.from({ length: 400 }, (_, i) => `u${i}@example.com`);
    const crowd = parsePolicy(JSON.stringify({
      groups: { 'group:crowd': members },
      acls: [{ action: 'accept', src: ['group:crowd'], dst: ['group:crowd:22'] }],
      tests: [{ src: 'group:crowd', accept: ['group:crowd:22'] }],
    }));
    expect(() => runPolicyTests(crowd)).toThrow(/too much work: 160000 checks \(source devices × destination devices, summed over the tests\), at most 100000/);
    expect(MAX_TEST_CHECKS).toBe(100_000);
  });

  it('find the topology device that holds a tested address, by its address', () => {
    const topo = {
      users: [{ name: 'alice', email: 'alice@example.com' }],
      nodes: { db: { hostname: 'db', tags: ['tag:prod'], ipv4: '100.70.0.9', ipv6: 'fd7a:115c:a1e0::9', user: null } },
    };
    const p = parsePolicy(`{${BASE} "tests": [{"src": "tag:web", "accept": ["tag:prod:5432", "100.70.0.9:5432"], "deny": ["100.70.0.9:22", "[fd7a:115c:a1e0::9]:5432"]}]}`);
    expect(runPolicyTests(p, topo)).toEqual([]);
  });
});
