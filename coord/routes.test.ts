import { describe, expect, it } from 'vitest';
import { parsePolicy } from './policy/index.js';
import { autoApproved, enabledRoutesFor, prefixWithin } from './routes.js';
import type { User } from './store/index.js';

const policy = parsePolicy(`{
  "groups": {"group:net": ["nina@example.com"]},
  "tagOwners": {"tag:router": ["nina@example.com"], "tag:exit": ["nina@example.com"]},
  "autoApprovers": {
    "routes": {"10.0.0.0/16": ["tag:router"], "192.168.0.0/24": ["group:net"]},
    "exitNode": ["tag:exit"],
  },
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
}`);
const user = (email: string): User => ({ id: 'u', tailnetId: 1, email, displayName: email, role: 'member', status: 'active', passwordHash: null, created: '', lastSeen: null });

describe('route approval', () => {
  it('tests prefix containment per family', () => {
    expect(prefixWithin('10.0.3.0/24', '10.0.0.0/16')).toBe(true);
    expect(prefixWithin('10.0.0.0/8', '10.0.0.0/16')).toBe(false);
    expect(prefixWithin('10.1.0.0/24', '10.0.0.0/16')).toBe(false);
    expect(prefixWithin('fd00::/64', '10.0.0.0/8')).toBe(false);
    expect(prefixWithin('nonsense', '10.0.0.0/8')).toBe(false);
  });

  it('approves by tag, group and exit-node approvers only', () => {
    expect(autoApproved(policy, undefined, ['tag:router'], ['10.0.1.0/24', '10.2.0.0/24', '0.0.0.0/0'])).toEqual(['10.0.1.0/24']);
    expect(autoApproved(policy, undefined, ['tag:exit'], ['0.0.0.0/0', '::/0'])).toEqual(['0.0.0.0/0', '::/0']);
    expect(autoApproved(policy, user('nina@example.com'), [], ['192.168.0.0/25', '10.0.0.0/24'])).toEqual(['192.168.0.0/25']);
    // a tagged device does not inherit its user's approvals
    expect(autoApproved(policy, user('nina@example.com'), ['tag:exit'], ['192.168.0.0/25'])).toEqual([]);
  });

  it('keeps admin-enabled routes while advertised and drops withdrawn ones', () => {
    const d = { tags: [], advertisedRoutes: ['172.16.0.0/24', '10.9.0.0/24'], enabledRoutes: ['172.16.0.0/24', '172.17.0.0/24'] };
    expect(enabledRoutesFor(policy, user('x@example.com'), d)).toEqual(['172.16.0.0/24']);
  });
});
