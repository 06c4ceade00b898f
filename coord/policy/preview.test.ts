import { describe, expect, it } from 'vitest';
import { parsePolicy, preview, type Topology } from './index.js';

const TEXT = `{
  "groups": {"group:eng": ["alice@example.com"]},
  "tagOwners": {"tag:web": ["group:eng"]},
  "acls": [
    {"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"]},
    {"action": "accept", "src": ["bob@example.com"], "dst": ["tag:web:22", "100.64.0.1:80"]},
    {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
  ],
  "grants": [
    {"src": ["*"], "dst": ["tag:web"], "ip": ["tcp:8080"]},
  ],
}`;

const TOPO: Topology = {
  users: [{ name: 'alice', email: 'alice@example.com' }, { name: 'bob', email: 'bob@example.com' }],
  nodes: {
    web: { hostname: 'web', tags: ['tag:web'], ipv4: '100.64.0.10', ipv6: '', user: null },
    a1: { hostname: 'a1', tags: [], ipv4: '100.64.0.1', ipv6: '', user: 'alice' },
  },
};

describe('preview', () => {
  it('lists what a user may reach, with line numbers', () => {
    const r = preview(parsePolicy(TEXT), TOPO, { user: 'alice@example.com' });
    expect(r).toEqual({
      type: 'user', previewFor: 'alice@example.com',
      matches: [
        { users: ['group:eng'], ports: ['tag:web:443'], lineNumber: 5 },
        { users: ['autogroup:member'], ports: ['autogroup:self:*'], lineNumber: 7 },
        { users: ['*'], ports: ['tag:web:tcp:8080'], lineNumber: 10 },
      ],
    });
  });

  it('lists who may reach an ip:port', () => {
    const r = preview(parsePolicy(TEXT), TOPO, { ipPort: '100.64.0.10:22' });
    expect(r.matches).toEqual([{ users: ['bob@example.com'], ports: ['tag:web:22'], lineNumber: 6 }]);
    const a = preview(parsePolicy(TEXT), TOPO, { ipPort: '100.64.0.1:80' });
    expect(a.matches.map((m) => m.lineNumber)).toEqual([6, 7]);
    expect(preview(parsePolicy(TEXT), TOPO, { ipPort: '100.64.0.10:9' }).matches).toEqual([]);
    expect(() => preview(parsePolicy(TEXT), TOPO, { ipPort: 'web:22' })).toThrow(/not an ip:port/);
  });
});
