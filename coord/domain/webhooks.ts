// The tailnet's webhook endpoints (which events go where). Delivery is ../webhooks.ts.
import { InvalidInput, NotFound } from '../errors.js';
import { randomToken } from '../secrets.js';
import type { Tailnet, Webhook } from '../store/index.js';
import { checkWebhookTarget, WebhookTargetError } from '../webhook-target.js';
import { Operations, type Caller } from './context.js';
import { str, uniqueStrings } from './input.js';

/** Tailscale's webhook provider types; "" is a plain JSON receiver. */
const PROVIDER_TYPES = ['', 'slack', 'mattermost', 'googlechat', 'discord'];

export const WEBHOOK_EVENTS = [
  'nodeCreated', 'nodeNeedsApproval', 'nodeApproved', 'nodeKeyExpiringInOneDay', 'nodeKeyExpired', 'nodeDeleted',
  'policyUpdate', 'userCreated', 'userNeedsApproval', 'userSuspended', 'userRestored', 'userDeleted', 'userApproved',
  'userRoleUpdated',
  // Accepted, as Tailscale's API does, but never sent: the agent turns IP forwarding on itself when it routes a
  // subnet or is an exit node (agent/routing/host.ts), so forwarding is never found off.
  'subnetIPForwardingNotEnabled', 'exitNodeIPForwardingNotEnabled',
];

/** The endpoint URL and subscriptions of a request; `partial` (a PATCH) leaves out what is not given. */
function checkWebhookBody(b: Record<string, unknown>, partial: boolean): { url?: string; subs?: string[] } {
  const out: { url?: string; subs?: string[] } = {};
  if (b.endpointUrl !== undefined || !partial) {
    const url = str(b.endpointUrl, 'endpointUrl', 2048);
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new InvalidInput('"endpointUrl" is not a URL');
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new InvalidInput('"endpointUrl" must be an http(s) URL');
    out.url = url;
  }
  if (b.subscriptions !== undefined || !partial) {
    const subs = uniqueStrings(b.subscriptions ?? [], 'subscriptions', WEBHOOK_EVENTS.length * 2, 64);
    const bad = subs.filter((s) => !WEBHOOK_EVENTS.includes(s));
    if (bad.length > 0) throw new InvalidInput(`unknown event types: ${bad.join(', ')} (known: ${WEBHOOK_EVENTS.join(', ')})`);
    out.subs = subs;
  }
  return out;
}

const newSecret = () => 'mwwhsec-' + randomToken(40);

export class WebhookOperations extends Operations {
  /** Refuses an endpoint on coord's own host or a private network (a blind SSRF), unless the operator allows it. */
  private async checkTarget(url: string): Promise<void> {
    try {
      await checkWebhookTarget(url, this.deps.allowPrivateWebhooks === true);
    } catch (err) {
      if (err instanceof WebhookTargetError) throw new InvalidInput(err.message);
      throw err;
    }
  }

  /** Creates an endpoint; its signing secret is returned once. */
  async create(c: Caller, t: Tailnet, b: Record<string, unknown>): Promise<{ webhook: Webhook; secret: string }> {
    const { url, subs } = checkWebhookBody(b, false);
    const providerType = b.providerType === undefined ? '' : str(b.providerType, 'providerType', 32);
    if (!PROVIDER_TYPES.includes(providerType)) throw new InvalidInput(`"providerType" must be one of ${PROVIDER_TYPES.map((p) => JSON.stringify(p)).join(', ')}`);
    await this.checkTarget(url!);
    const id = 'w' + randomToken(12);
    const secret = newSecret();
    const { store } = this;
    const webhook = store.tx(() => {
      const w = store.createWebhook({
        id, tailnetId: t.id, endpointUrl: url!, providerType,
        subscriptions: subs!, secret, creatorLoginName: c.user.email,
      });
      this.audit(c, 'CREATE', { id, name: url, type: 'WEBHOOK' }, undefined, { endpointUrl: url, subscriptions: subs });
      return w;
    });
    return { webhook, secret };
  }

  list(t: Tailnet): Webhook[] {
    return this.store.listWebhooks(t.id);
  }

  /** An endpoint of the caller's tailnet; any other is not found. */
  find(c: Caller, id: string): Webhook {
    const w = this.store.getWebhook(id);
    if (!w || w.tailnetId !== c.tailnet.id) throw new NotFound(`webhook "${id}" not found`);
    return w;
  }

  async update(c: Caller, w: Webhook, b: Record<string, unknown>): Promise<Webhook> {
    const { url, subs } = checkWebhookBody(b, true);
    if (url !== undefined) await this.checkTarget(url);
    const { store } = this;
    return store.tx(() => {
      const updated = store.updateWebhook(w.id, url ?? w.endpointUrl, subs ?? w.subscriptions);
      this.audit(c, 'UPDATE', { id: w.id, name: w.endpointUrl, type: 'WEBHOOK' }, { endpointUrl: w.endpointUrl, subscriptions: w.subscriptions }, { endpointUrl: url, subscriptions: subs });
      return updated;
    });
  }

  /** A new signing secret, returned once; the old one stops signing at once. */
  rotateSecret(c: Caller, w: Webhook): { webhook: Webhook; secret: string } {
    const secret = newSecret();
    const { store } = this;
    const webhook = store.tx(() => {
      const updated = store.setWebhookSecret(w.id, secret);
      this.audit(c, 'UPDATE', { id: w.id, name: w.endpointUrl, type: 'WEBHOOK', property: 'SECRET' });
      return updated;
    });
    return { webhook, secret };
  }

  /** Sends the endpoint a `test` event (whatever it subscribes to), signed and retried like any other. */
  test(c: Caller, w: Webhook): void {
    this.emit(c, 'test', { endpointId: w.id });
  }

  delete(c: Caller, w: Webhook): void {
    const { store } = this;
    store.tx(() => {
      store.deleteWebhook(w.id);
      this.audit(c, 'DELETE', { id: w.id, name: w.endpointUrl, type: 'WEBHOOK' });
    });
  }
}
