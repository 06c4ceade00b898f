// One policy check (parse, run the tests, optionally compile), as a job that can run on another thread:
// its input and output are plain data (structured-clone safe), and a refusal travels as data too.
import { compileFilters } from './index.js';
import { PolicyError, type TestFailure } from './errors.js';
import { parsePolicy, portRange, type Policy } from './parse.js';
import { runPolicyTests } from './tests.js';
import type { Topology } from './types.js';

export interface CheckJob {
  text: string;
  topo: Topology;
  /**
   * A validation: also compile the policy for the topology, to prove it compiles, and answer only
   * whether it passed (no Policy to copy back across threads).
   */
  compile: boolean;
  /** A JSON list of tests to run instead of the file's own (acl/validate with a list of tests). */
  tests?: string;
}

export type CheckOutcome =
  | { ok: true; policy: Policy | null }
  | { ok: false; reason: string; at?: { line: number; column: number }; failures?: TestFailure[] };

export function runCheckJob(job: CheckJob): CheckOutcome {
  try {
    const policy = parsePolicy(job.text, job.tests);
    const failures = runPolicyTests(policy, job.topo);
    if (failures.length > 0) return { ok: false, reason: 'test(s) failed', failures };
    if (!job.compile) return { ok: true, policy };
    compileFilters(policy, job.topo);
    return { ok: true, policy: null };
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    const at = err.line !== undefined ? { line: err.line, column: err.column! } : undefined;
    return { ok: false, reason: err.reason, at, failures: err.failures };
  }
}

/** The outcome as the caller sees it: the Policy, or the PolicyError the check raised. */
export function settle(outcome: CheckOutcome): Policy | null {
  if (!outcome.ok) throw new PolicyError(outcome.reason, outcome.at, outcome.failures);
  return outcome.policy && reintern(outcome.policy);
}

/** A policy that crossed threads carries copies of the shared port-range objects: share them again. */
function reintern(policy: Policy): Policy {
  for (const r of policy.acls) for (const d of r.dst) d.ports = d.ports.map((p) => portRange(p.First, p.Last));
  for (const g of policy.grants) for (const ip of g.ip) ip.ports = ip.ports.map((p) => portRange(p.First, p.Last));
  return policy;
}
