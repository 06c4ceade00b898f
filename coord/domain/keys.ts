// Keys: auth keys (register devices), API keys (the admin API), session keys (signed-in people), and
// finding the caller behind a key.
import { Forbidden, InvalidInput, NotFound } from '../errors.js';
import { can, FORBIDDEN_MESSAGE } from '../roles.js';
import { hashSecret, parseSecret, secretMatches } from '../secrets.js';
import type { Key, Tailnet, User } from '../store/index.js';
import { Operations, type Caller, type DomainDeps } from './context.js';
import { bool, MAX_EMAIL, optionalText, str, tagList } from './input.js';
import type { PolicyOperations } from './policy.js';

const MAX_EXPIRY_SECONDS = 90 * 86400;

export class KeyOperations extends Operations {
  constructor(deps: DomainDeps, private readonly policy: PolicyOperations) {
    super(deps);
  }

  /** The caller behind an API or session key, if the key is valid and its user active. */
  callerOf(token: string): Caller | undefined {
    const { store } = this;
    const parsed = parseSecret(token);
    if (!parsed || (parsed.kind !== 'api' && parsed.kind !== 'session')) return undefined;
    const k = store.getKey(parsed.id);
    if (!k || (k.keyType !== 'api' && k.keyType !== 'session') || !secretMatches(token, k.hash)) {
      hashSecret(token); // same work on a miss
      return undefined;
    }
    if (k.revoked || Date.parse(k.expires) <= Date.now()) return undefined;
    const user = store.getUser(k.userId);
    const tailnet = user && store.getTailnet(user.tailnetId);
    if (!user || !tailnet || user.status !== 'active') return undefined;
    return { user, tailnet, keyId: k.id, via: k.keyType === 'session' ? 'console' : 'api' };
  }

  /**
   * Keys of the tailnet that are not sessions, API keys only the caller's own (as Tailscale lists them),
   * revoked ones too for 90 days after their revocation (the longest a key lives), with `revoked`.
   */
  list(c: Caller, t: Tailnet): Key[] {
    return this.store.listKeys(t.id, c.user.id, new Date(Date.now() - MAX_EXPIRY_SECONDS * 1000).toISOString());
  }

  /** A key the caller may see: an auth key of the tailnet, or one of the caller's own API keys. */
  find(c: Caller, t: Tailnet, id: string): Key {
    const k = this.store.getKey(id);
    if (!k || k.tailnetId !== t.id || k.keyType === 'session' || (k.keyType === 'api' && k.userId !== c.user.id)) {
      throw new NotFound(`key "${id}" not found`);
    }
    return k;
  }

  revoke(c: Caller, k: Key): void {
    const { store } = this;
    store.tx(() => {
      store.revokeKey(k.id);
      this.audit(c, 'DELETE', { id: k.id, name: k.description, type: k.keyType === 'api' ? 'API_KEY' : 'AUTH_KEY' });
    });
  }

  /** Creates a key from a request in Tailscale's shape; the secret is returned once. */
  create(c: Caller, t: Tailnet, b: Record<string, unknown>): { key: Key; secret: string } {
    const keyType = b.keyType === undefined ? 'auth' : str(b.keyType, 'keyType');
    if (keyType !== 'auth' && keyType !== 'api') throw new InvalidInput('"keyType" must be "auth" or "api"');
    if (keyType === 'api' && !can(c.user.role, 'keys:api')) throw new Forbidden(FORBIDDEN_MESSAGE);
    // Absent or 0 (what clients that always send the field send for "no choice"): the longest, 90 days.
    const expirySeconds = b.expirySeconds === undefined || b.expirySeconds === 0 ? MAX_EXPIRY_SECONDS : b.expirySeconds;
    if (typeof expirySeconds !== 'number' || !Number.isInteger(expirySeconds) || expirySeconds < 1 || expirySeconds > MAX_EXPIRY_SECONDS) {
      throw new InvalidInput('"expirySeconds" must be a whole number of seconds between 1 and 7776000 (90 days), or 0 for 90 days');
    }
    const description = optionalText(b.description, 'description', 50);
    const expires = new Date(Date.now() + expirySeconds * 1000).toISOString();
    const { store } = this;
    if (keyType === 'api') {
      const made = store.tx(() => {
        const k = store.createKey({ tailnetId: t.id, keyType: 'api', userId: c.user.id, description, expires });
        this.audit(c, 'CREATE', { id: k.key.id, name: description, type: 'API_KEY' }, undefined, { expires });
        return k;
      });
      return { key: made.key, secret: made.secret.secret };
    }
    const capabilities = b.capabilities as { devices?: { create?: unknown } } | undefined;
    const caps = (capabilities?.devices?.create ?? {}) as Record<string, unknown>;
    if (typeof caps !== 'object') throw new InvalidInput('"capabilities.devices.create" must be an object');
    const tags = caps.tags === undefined ? [] : tagList(caps.tags, 'capabilities.devices.create.tags');
    if (tags.length > 0) this.policy.checkCallerTags(c, tags);
    const deviceUser = b.user === undefined ? c.user : this.deviceUserFor(c, t, b.user);
    const flag = (v: unknown, f: string) => (v === undefined ? false : bool(v, `capabilities.devices.create.${f}`));
    const opts = { reusable: flag(caps.reusable, 'reusable'), ephemeral: flag(caps.ephemeral, 'ephemeral'), preauthorized: flag(caps.preauthorized, 'preauthorized') };
    const made = store.tx(() => {
      const k = store.createKey({ tailnetId: t.id, keyType: 'auth', userId: c.user.id, deviceUserId: deviceUser.id, tags, description, expires, ...opts });
      this.audit(c, 'CREATE', { id: k.key.id, name: description, type: 'AUTH_KEY' }, undefined, { ...opts, tags, user: deviceUser.email, expires });
      return k;
    });
    return { key: made.key, secret: made.secret.secret };
  }

  /** The user an auth key registers devices for, when the request names one (`"user"`). */
  private deviceUserFor(c: Caller, t: Tailnet, ref: unknown): User {
    const u = this.store.getUserByEmail(t.id, str(ref, 'user', MAX_EMAIL));
    if (!u) throw new InvalidInput(`"user": no user ${JSON.stringify(ref)} in this network`);
    if (u.id !== c.user.id) {
      if (!can(c.user.role, 'keys:for-others')) throw new Forbidden('only owners and admins may create auth keys for another user');
      if (u.role === 'owner') throw new Forbidden("only the owner may create auth keys for the owner's devices");
      if (u.status !== 'active') throw new InvalidInput(`"user": ${u.email} is not active`);
    }
    return u;
  }
}
