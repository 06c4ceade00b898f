// The policy engine: Tailscale policy files (HuJSON) → validated Policy → per-device FilterRules.
// This file is the engine's single entry point; import nothing else from coord/policy.
//
//   const policy = parsePolicy(text);                 // throws PolicyError (line:column) on a bad file
//   const failures = runPolicyTests(policy, topo);    // [] when the policy's `tests` all pass
//   const filters = compileFilters(policy, topo);     // { nodeName: FilterRule[] }
//   const c = new PolicyCompiler(policy, topo);       // incremental: c.setNode(...) → affected node names
//
// checkPolicy(text, topo) does parse + tests in one call and throws PolicyError("test(s) failed…") the way
// a policy write must be gated (docs/policy.md: a failing test refuses the change).

import type { FilterRule } from '../../wire/types.js';
import { PolicyCompiler } from './compiler.js';
import type { Policy } from './parse.js';
import type { Topology } from './types.js';

export { PolicyError, type TestFailure } from './errors.js';
export type { Role, Topology, TopoNode, TopoUser, SharedUser, ViaSteer } from './types.js';
export type { FilterRule } from '../../wire/types.js';

/**
 * A parsed, validated policy. Field names are the modern spelling whatever the file used. Every rule
 * keeps `line` (1-based) for previews and error messages. Treat it as read-only. Fields: `groups`
 * (Map "group:x" → member emails), `hosts` (Map name → {text, range}), `tagOwners` (Map "tag:x" →
 * owners as written), `acls`, `grants`, `tests`, `postures`, `defaultSrcPosture`, `autoApprovers`
 * ({routes: {cidr: [owners]}, exitNode: [owners]}).
 */
export type { Policy, AclRule, Grant, PolicyTest } from './parse.js';

/**
 * parsePolicy(text): HuJSON (comments, trailing commas) → validated Policy. Accepts the modern and the
 * legacy spelling (ACLs/Action/Users/Ports, Groups, Hosts, TagOwners, Tests/User/Allow/Deny). Refuses
 * unknown fields by name, actions other than "accept", undefined tags, groups and hosts, bad ports,
 * `autogroup:self` on a src, and the other policies Tailscale refuses — with Tailscale's message and
 * the line:column of the offending value. Throws PolicyError.
 */
export { parsePolicy } from './parse.js';

/**
 * compileFilters(policy, topo): the FilterRules each device of the topology receives, keyed by node name
 * (every node present; [] means it accepts nothing). A device receives the rules whose destinations
 * include its addresses, its approved subnet routes, or the internet when it is an approved exit node;
 * autogroup:self is expanded per user; grants with `app` become CapGrant rules; `via` grants land on
 * the named routers only; srcPosture limits sources to devices whose posture matches.
 * Shared-in users (topo.sharedUsers) appear as sources only on the devices shared with them.
 */
export function compileFilters(policy: Policy, topo: Topology): Record<string, FilterRule[]> {
  return new PolicyCompiler(policy, topo).compileAll();
}

/**
 * runPolicyTests(policy, topo?): runs the policy's `tests` with Tailscale's semantics: `src` is a user,
 * group (every member), tag, host or IP; each `accept`/`deny` entry is "host:port" with ONE port, where
 * host is a user, group, tag, autogroup:self (the src user's devices), autogroup:internet, a host alias
 * or an IP (not a prefix). The tests run against the topology's devices plus one synthetic device per
 * user and tag they name (so they do not depend on which devices exist). A test that names something
 * unknown or malformed fails (Tailscale answers "test(s) failed" too); users are checked against
 * `topo.users` when a topology is given. Returns the failures ([] = all pass).
 * checkPolicy(text, topo?): parse + tests; throws PolicyError (`reason` "test(s) failed: …", `failures`).
 */
export { runPolicyTests, checkPolicy } from './tests.js';

/**
 * preview(policy, topo, who): what a user (`who.user`, an email) may reach, or who may reach an
 * `ip:port` (`who.ipPort`), each entry with the line of the rule that allows it — the shape of
 * Tailscale's `POST /acl/preview` answer.
 */
export { preview, type PreviewResult, type PreviewMatch } from './preview.js';

/**
 * PolicyCompiler: the incremental compiler coord keeps per network (compileFilters uses it too).
 *  - `filterFor(name)`: the node's rules (cached). The array and its rule objects belong to the compiler:
 *    treat them as read-only, and serialize them when you need a snapshot — after `setNode`/`removeNode`,
 *    rules whose sources changed are updated in place (that is what makes a join cost milliseconds).
 *  - `setNode(name, node)` (join, retag, new routes or posture) and `removeNode(name)` update the topology
 *    and return the names of the other nodes whose filter changed (setNode includes `name` itself).
 *  - `setUsers(users)`, `setSharedUsers(list)`, `setPolicy(policy)` rebuild and return every node whose
 *    filter changed.
 *  - `nodeNames()`, `compileAll()`.
 *  - `viaFor(name)`: the `via` grants covering the node as a source (destinations and router tags), for
 *    coord's per-device route plan.
 * Who may talk to whom (a device's netmap peers) follows from these filters: coord/peers.ts (PeerIndex).
 */
export { PolicyCompiler } from './compiler.js';

/** filterAccepts(rules, src, dst, port, proto): whether a filter accepts a new connection (for tests and tools). */
export { filterAccepts } from './tests.js';

/**
 * mayUseTag(policy, who, tag): whether tagOwners let `who` ({email, role} of a user and/or a device's
 * `tags`) apply `tag` — listed by email, via a group, a role autogroup, autogroup:member, or an owning
 * tag the device already carries. isAutoApprover(policy, who, approvers): the same test against an
 * autoApprovers list, where a tagged device matches by its tags only. Role rights beyond the policy
 * (admins may use any tag) are the caller's.
 */
export { mayUseTag, isAutoApprover, type Claimant } from './owners.js';

/**
 * checkPolicyOffThread(text, topo, compile): parse + tests (+ compile for the topology) on a worker
 * thread, so a large policy never stalls coord's event loop. Resolves to the Policy; rejects with
 * PolicyError, or PolicyCheckBusy when too many checks wait. The tests' work is bounded
 * (MAX_TEST_DESTINATIONS, MAX_TEST_CHECKS): a policy asking for more is refused with the reason.
 */
export { checkPolicyOffThread, PolicyCheckBusy } from './offload.js';
export { MAX_TEST_DESTINATIONS, MAX_TEST_CHECKS } from './tests.js';

/** The prefixes autogroup:internet stands for (on an exit node's filter, the rules that let traffic out). */
export { INTERNET_PREFIXES } from './internet.js';
