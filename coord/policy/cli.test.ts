// The `coord policy` command line, run as the real program from dist/ (the global setup builds it).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { heaviestAcceptedPolicy } from '../../scripts/heavy-policy.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'mw-policy-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function coord(...args: string[]) {
  return spawnSync(process.execPath, [`${root}dist/coord/main.js`, ...args], { encoding: 'utf8' });
}

function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

const POLICY = file('policy.hujson', `{
  // web servers are for engineers
  "groups": {"group:eng": ["alice@example.com"]},
  "tagOwners": {"tag:web": ["group:eng"]},
  "acls": [
    {"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"]},
  ],
  "tests": [{"src": "alice@example.com", "accept": ["tag:web:443"], "deny": ["tag:web:22"]}],
}`);

const TOPO = file('topology.json', JSON.stringify({
  users: [{ id: 1, name: 'alice', email: 'alice@example.com' }],
  nodes: {
    a1: { hostname: 'a1', tags: [], ipv4: '100.64.0.1', ipv6: 'fd7a:115c:a1e0::1', user: 'alice', routable_ips: [], approved_routes: [] },
    web: { hostname: 'web', tags: ['tag:web'], ipv4: '100.64.0.10', ipv6: 'fd7a:115c:a1e0::a', user: null },
  },
}));

describe('coord policy compile', () => {
  it('prints every node\'s filter as {"nodes": ...}', () => {
    const r = coord('policy', 'compile', '--policy', POLICY, '--topology', TOPO);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      nodes: {
        a1: [],
        web: [{ SrcIPs: ['100.64.0.1', 'fd7a:115c:a1e0::1'], DstPorts: [{ IP: '100.64.0.10', Ports: { First: 443, Last: 443 } }, { IP: 'fd7a:115c:a1e0::a', Ports: { First: 443, Last: 443 } }] }],
      },
    });
  });

  it('refuses a bad policy with exit 1 and "error: <why>" naming line and column', () => {
    const bad = file('bad.hujson', '{\n  "acls": [{"action": "accept", "src": ["tag:nope"], "dst": ["*:*"]}]\n}');
    const r = coord('policy', 'compile', '--policy', bad, '--topology', TOPO);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`error: ${bad}:2:41: src=tag not found: "tag:nope"\n`);
  });

  it('refuses a policy whose tests fail', () => {
    const p = file('failing.hujson', '{"tagOwners": {"tag:web": []}, "tests": [{"src": "alice@example.com", "accept": ["tag:web:443"]}]}');
    const r = coord('policy', 'compile', '--policy', p, '--topology', TOPO);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^error: .*failing\.hujson: test\(s\) failed:\n {2}src "alice@example.com" \(line 1\): expected accept "tag:web:443", got drop\n$/);
  });

  it('refuses a policy whose tests ask for too much work with exit 1 and "error: <why>"', () => {
    const heavy = file('heavy.json', heaviestAcceptedPolicy(true));
    for (const args of [['compile', '--policy', heavy, '--topology', TOPO], ['check', heavy]]) {
      const r = coord('policy', ...args);
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/^error: .*the policy's tests ask for too much work: 10001 destinations, at most 10000 are allowed/);
    }
  });

  it('says what is missing or unreadable', () => {
    let r = coord('policy', 'compile', '--policy', POLICY);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/compile needs --policy FILE and --topology FILE\nusage: coord policy compile/);
    r = coord('policy', 'compile', '--policy', path.join(dir, 'missing'), '--topology', TOPO);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^error: cannot read policy .*missing: no such file\n$/);
    r = coord('policy', 'compile', '--policy', POLICY, '--topology', file('t.json', '{"users": []}'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^error: topology .* must be an object with "nodes"/);
    r = coord('policy', 'frob');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown subcommand "frob" \(compile, check or preview\)/);
  });
});

describe('coord policy check', () => {
  it('accepts a good policy and runs its tests', () => {
    const r = coord('policy', 'check', POLICY);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`ok: ${POLICY}: 1 acl, 0 grants, 1 test passed\n`);
  });

  it('names line:column of a syntax error', () => {
    const p = file('syntax.hujson', '{\n  "acls": [\n    {"action": "accept" "src": ["*"], "dst": ["*:*"]},\n  ],\n}');
    const r = coord('policy', 'check', p);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`error: ${p}:3:25: invalid HuJSON: CommaExpected\n`);
  });
});

describe('coord policy preview', () => {
  it('lists what a user may reach with the rule lines', () => {
    const r = coord('policy', 'preview', '--policy', POLICY, '--topology', TOPO, '--user', 'alice@example.com');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('line 6: group:eng -> tag:web:443\n');
    const j = coord('policy', 'preview', '--policy', POLICY, '--topology', TOPO, '--ip-port', '100.64.0.10:443', '--json');
    expect(JSON.parse(j.stdout)).toEqual({ type: 'ipport', previewFor: '100.64.0.10:443', matches: [{ users: ['group:eng'], ports: ['tag:web:443'], lineNumber: 6 }] });
  });

  it('needs exactly one of --user and --ip-port', () => {
    const r = coord('policy', 'preview', '--policy', POLICY, '--topology', TOPO);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/exactly one of --user EMAIL or --ip-port IP:PORT/);
  });
});
