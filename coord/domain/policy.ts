// The tailnet's policy file: the one check every policy passes (parse, the policy's tests, compile),
// writes with optimistic concurrency (If-Match), validation, preview, and who may use which tag.
import { createHash } from 'node:crypto';
import { InvalidInput, PreconditionFailed, Forbidden, Unavailable } from '../errors.js';
import { checkPolicyOffThread, compileFilters, mayUseTag, parsePolicy, PolicyCheckBusy, PolicyError, preview, runPolicyTests, type Policy, type Topology } from '../policy/index.js';
import { can } from '../roles.js';
import type { Tailnet, User } from '../store/index.js';
import { topologyOf } from '../topology.js';
import { isTag } from '../../wire/names.js';
import { Operations, type Caller } from './context.js';
import { isIp } from './input.js';

/** A new tailnet's policy: Tailscale's default, everyone may reach everything (edit it to restrict). */
export const DEFAULT_POLICY = `// The policy file of this network, in Tailscale's syntax (HuJSON).
// The default lets every device reach every other device, as a new Tailscale network does.
{
  "acls": [
    {"action": "accept", "src": ["*"], "dst": ["*:*"]},
  ],
}
`;

export function etagOf(text: string): string {
  return `"${createHash('sha256').update(text).digest('hex').slice(0, 32)}"`;
}

/** Turns a policy engine error into invalid input (failing tests become `data`, as Tailscale answers). */
function policyInputError(err: unknown): unknown {
  if (!(err instanceof PolicyError)) return err;
  if (err.failures && err.failures.length > 0) {
    return new InvalidInput('test(s) failed', err.failures.map((f) => ({ user: f.src, errors: [f.message] })));
  }
  return new InvalidInput(err.message);
}

/**
 * The check of a policy text: parses (errors with line:column) and runs the policy's tests against the
 * tailnet (the topology is built only when needed); with `compile`, compiles it once too. The live
 * tailnet compiles a policy it takes on incrementally, so a write does not ask for `compile`.
 */
export function checkPolicy(text: string, topology: () => Topology, compile: boolean): Policy {
  let topo: Topology | undefined;
  const topoOnce = () => (topo ??= topology());
  try {
    const policy = parsePolicy(text);
    if (policy.tests.length > 0) {
      const failures = runPolicyTests(policy, topoOnce());
      if (failures.length > 0) throw new PolicyError('test(s) failed', undefined, failures);
    }
    if (compile) compileFilters(policy, topoOnce());
    return policy;
  } catch (err) {
    throw policyInputError(err);
  }
}


/** Whether a user may apply a tag: by role (admins may use any), or as an owner in tagOwners. */
export function userMayUseTag(policy: Policy, user: User, tag: string): boolean {
  return can(user.role, 'tags:any') || mayUseTag(policy, { email: user.email, role: user.role, tags: [] }, tag);
}

/**
 * Refuses tags that are malformed, not defined in tagOwners (undefined tags can be used by nobody), or
 * not `allowed`; the refusal names them the way Tailscale does.
 */
export function checkTags(policy: Policy, tags: string[], allowed: (tag: string) => boolean): void {
  const bad = tags.filter((t) => !isTag(t) || !policy.tagOwners.has(t) || !allowed(t));
  if (bad.length > 0) throw new Forbidden(`requested tags [${bad.join(', ')}] are invalid or not permitted`);
}

function nonEmpty(text: string): string {
  if (text.trim() === '') throw new InvalidInput('empty policy file');
  return text;
}

export type PreviewSubject = { user: string } | { ipPort: string };

/** The subject of a preview: `type` "user" (an email) or "ipport" (an ip:port), and the value. */
export function previewSubject(type: string, previewFor: string | null): PreviewSubject {
  if (type !== 'user' && type !== 'ipport') throw new InvalidInput('"type" must be "user" or "ipport"');
  if (!previewFor) throw new InvalidInput('"previewFor" is required (an email for type=user, an ip:port for type=ipport)');
  if (type === 'user') return { user: previewFor };
  const colon = previewFor.lastIndexOf(':');
  const port = previewFor.slice(colon + 1);
  if (colon < 0 || !isIp(previewFor.slice(0, colon).replace(/^\[|\]$/g, '')) || !/^\d{1,5}$/.test(port) || Number(port) > 65535) {
    throw new InvalidInput(`"previewFor" must be an ip:port like 100.64.0.1:22 for type=ipport (not ${JSON.stringify(previewFor)})`);
  }
  return { ipPort: previewFor };
}

/**
 * checkPolicy off the event loop (a worker thread, policy/offload.ts): what the API uses, so that a large
 * policy's tests and compile never stall other requests. Busy: Unavailable (try again in a moment).
 */
export async function checkPolicyAsync(text: string, topology: () => Topology, compile: boolean, tests?: string): Promise<Policy | null> {
  try {
    return compile ? await checkPolicyOffThread(text, topology(), true, tests) : await checkPolicyOffThread(text, topology(), false);
  } catch (err) {
    if (err instanceof PolicyCheckBusy) throw new Unavailable(err.message);
    throw policyInputError(err);
  }
}

export class PolicyOperations extends Operations {
  topology(tailnetId: number): Topology {
    return topologyOf(this.store, tailnetId);
  }

  /** The tailnet's current policy (parsed once, kept with the live tailnet). */
  current(tailnetId: number): Policy {
    return this.hub.policyOf(tailnetId);
  }

  /** Refuses tags the caller may not apply to a device or an auth key. */
  checkCallerTags(c: Caller, tags: string[]): void {
    const policy = this.current(c.tailnet.id);
    checkTags(policy, tags, (t) => userMayUseTag(policy, c.user, t));
  }

  /**
   * Replaces the policy. `ifMatch` (an ETag, or undefined / "*" / "ts-default" for unconditional) must
   * match the stored policy's. Returns the new ETag.
   */
  async set(c: Caller, t: Tailnet, text: string, ifMatch: string | undefined): Promise<string> {
    nonEmpty(text);
    const conditional = ifMatch !== undefined && ifMatch !== '*' && ifMatch !== 'ts-default';
    if (conditional && ifMatch !== t.policyEtag) {
      throw new PreconditionFailed('precondition failed: the policy was changed since it was read (If-Match does not match the current ETag)');
    }
    const { store, hub } = this;
    const policy = (await checkPolicyAsync(text, () => this.topology(t.id), false))!;
    // Compile into the live tailnet first: a policy that does not compile is refused with nothing stored.
    let prepared;
    try {
      prepared = hub.preparePolicy(t.id, policy);
    } catch (err) {
      throw policyInputError(err);
    }
    const etag = etagOf(text);
    try {
      store.tx(() => {
        const current = store.getTailnet(t.id)!;
        if (conditional && current.policyEtag !== ifMatch) throw new PreconditionFailed('precondition failed: the policy was changed since it was read');
        store.setPolicy(t.id, text, etag);
        this.audit(c, 'UPDATE', { id: String(t.id), name: t.name, type: 'TAILNET', property: 'ACL' }, current.policy, text);
      });
    } catch (err) {
      prepared.rollback();
      throw err;
    }
    prepared.commit();
    this.deps.log.info({ tailnet: t.name, actor: c.user.email, etag }, 'policy updated');
    this.emit(c, 'policyUpdate', { tailnet: t.name });
    return etag;
  }

  /** Checks a policy text (or the stored one) against the tailnet, compiling it. */
  async validate(t: Tailnet, text: string | undefined): Promise<void> {
    await checkPolicyAsync(text === undefined ? t.policy : nonEmpty(text), () => this.topology(t.id), true);
  }

  /** Runs a JSON list of tests (Tailscale's other acl/validate body) against the stored policy. */
  async validateTests(t: Tailnet, tests: string): Promise<void> {
    await checkPolicyAsync(t.policy, () => this.topology(t.id), true, tests);
  }

  /** What a user may reach, or who may reach an ip:port (see previewSubject), under a policy text (or the stored one). */
  preview(t: Tailnet, text: string | undefined, who: PreviewSubject): object {
    const policyText = text === undefined ? t.policy : nonEmpty(text);
    try {
      return preview(parsePolicy(policyText), this.topology(t.id), who as never) as object;
    } catch (err) {
      throw policyInputError(err);
    }
  }
}
