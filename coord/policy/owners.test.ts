import { describe, expect, it } from 'vitest';
import { isAutoApprover, mayUseTag, parsePolicy } from './index.js';

const policy = parsePolicy(`{
  "groups": {"group:ops": ["Olga@Example.com"]},
  "tagOwners": {
    "tag:web": ["alice@example.com"],
    "tag:db": ["group:ops", "tag:web"],
    "tag:ci": ["autogroup:network-admin"],
    "tag:any": ["autogroup:member"],
    "tag:none": [],
    "tag:router": ["alice@example.com"],
  },
  "autoApprovers": {
    "routes": {"10.0.0.0/16": ["tag:router", "group:ops", "autogroup:admin", "nina@example.com"]},
    "exitNode": ["autogroup:member"],
  },
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
}`);
const routeApprovers = policy.autoApprovers.routes['10.0.0.0/16']!;

describe('mayUseTag', () => {
  it('accepts a user listed by email (case-insensitive) and nobody else', () => {
    expect(mayUseTag(policy, { email: 'alice@example.com' }, 'tag:web')).toBe(true);
    expect(mayUseTag(policy, { email: 'ALICE@example.COM' }, 'tag:web')).toBe(true);
    expect(mayUseTag(policy, { email: 'bob@example.com' }, 'tag:web')).toBe(false);
  });

  it('accepts members of a listed group, and devices already carrying an owning tag', () => {
    expect(mayUseTag(policy, { email: 'olga@example.com' }, 'tag:db')).toBe(true);
    expect(mayUseTag(policy, { email: 'alice@example.com' }, 'tag:db')).toBe(false);
    expect(mayUseTag(policy, { tags: ['tag:web'] }, 'tag:db')).toBe(true);
    expect(mayUseTag(policy, { email: 'bob@example.com', tags: ['tag:web'] }, 'tag:db')).toBe(true);
    expect(mayUseTag(policy, { tags: ['tag:db'] }, 'tag:web')).toBe(false);
  });

  it('matches role autogroups by role and autogroup:member by any user, never without a user', () => {
    expect(mayUseTag(policy, { email: 'n@example.com', role: 'network-admin' }, 'tag:ci')).toBe(true);
    expect(mayUseTag(policy, { email: 'n@example.com', role: 'admin' }, 'tag:ci')).toBe(false);
    expect(mayUseTag(policy, { email: 'm@example.com', role: 'member' }, 'tag:any')).toBe(true);
    expect(mayUseTag(policy, { tags: ['tag:web'] }, 'tag:any')).toBe(false);
    expect(mayUseTag(policy, {}, 'tag:any')).toBe(false);
  });

  it('is the policy only: no owner means nobody, whatever the role; an undefined tag is nobody’s', () => {
    expect(mayUseTag(policy, { email: 'o@example.com', role: 'owner' }, 'tag:none')).toBe(false);
    expect(mayUseTag(policy, { email: 'o@example.com', role: 'owner' }, 'tag:web')).toBe(false);
    expect(mayUseTag(policy, { email: 'alice@example.com' }, 'tag:undefined')).toBe(false);
  });
});

describe('isAutoApprover', () => {
  it('matches a tagged device by its tags only', () => {
    expect(isAutoApprover(policy, { tags: ['tag:router'] }, routeApprovers)).toBe(true);
    expect(isAutoApprover(policy, { email: 'nina@example.com', tags: ['tag:web'] }, routeApprovers)).toBe(false);
    expect(isAutoApprover(policy, { email: 'x@example.com', role: 'member', tags: ['tag:web'] }, policy.autoApprovers.exitNode)).toBe(false);
  });

  it('matches an untagged device by its user: email, group, role autogroup, autogroup:member', () => {
    expect(isAutoApprover(policy, { email: 'Nina@example.com', tags: [] }, routeApprovers)).toBe(true);
    expect(isAutoApprover(policy, { email: 'olga@example.com' }, routeApprovers)).toBe(true);
    expect(isAutoApprover(policy, { email: 'a@example.com', role: 'admin' }, routeApprovers)).toBe(true);
    expect(isAutoApprover(policy, { email: 'a@example.com', role: 'member' }, routeApprovers)).toBe(false);
    expect(isAutoApprover(policy, { email: 'x@example.com', role: 'member' }, policy.autoApprovers.exitNode)).toBe(true);
    expect(isAutoApprover(policy, { tags: [] }, policy.autoApprovers.exitNode)).toBe(false);
  });
});
