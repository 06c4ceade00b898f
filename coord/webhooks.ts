// Webhooks: events Tailscale names (nodeCreated, policyUpdate, userRoleUpdated, …) POSTed as JSON to
// each subscribed endpoint, signed like Tailscale's (`Tailscale-Webhook-Signature: t=<unix>,v1=<hex>`,
// HMAC-SHA256 over "<t>.<body>" with the endpoint's secret), retried with exponential backoff.
// Deliveries in flight are kept in memory only: a restart of coord drops pending retries.
import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import { backoffMs, OutboundHttp } from './outbound-http.js';
import type { Store } from './store/index.js';
import { WEBHOOK_TARGET } from './webhook-target.js';

export const MAX_ATTEMPTS = 6;

export function signWebhook(secret: string, unixSeconds: number, body: string): string {
  return `t=${unixSeconds},v1=${createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex')}`;
}

const MESSAGES: Record<string, string> = {
  nodeCreated: 'Node created', nodeNeedsApproval: 'Node needs approval', nodeApproved: 'Node approved',
  nodeKeyExpired: 'Node key expired', nodeDeleted: 'Node deleted', policyUpdate: 'Policy updated',
  userCreated: 'User created', userRoleUpdated: 'User role updated', userDeleted: 'User deleted',
  test: 'This is a test event', userSuspended: 'User suspended', userRestored: 'User restored', userApproved: 'User approved',
};

export class Webhooks {
  private readonly pending = new Set<Promise<void>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;
  /** For the metrics endpoint: attempts answered 2xx, attempts that failed, deliveries given up on. */
  readonly counts = { delivered: 0, failedAttempts: 0, givenUp: 0 };

  private readonly http: OutboundHttp;

  /** `allowPrivate`: deliver to loopback and private addresses too (`coord serve --allow-private-webhooks`). */
  constructor(private readonly store: Store, private readonly log: Logger, private readonly baseDelayMs = 1000, allowPrivate = false) {
    this.http = new OutboundHttp(allowPrivate, WEBHOOK_TARGET);
  }

  emit(tailnetId: number, type: string, data: Record<string, unknown>): void {
    if (this.closed) return;
    const t = this.store.getTailnet(tailnetId);
    if (!t) return;
    for (const w of this.store.listWebhooks(tailnetId)) {
      // A `test` event (POST /webhooks/{id}/test) goes to the one endpoint it names, subscribed or not.
      if (type === 'test' ? w.id !== data.endpointId : !w.subscriptions.includes(type)) continue;
      const body = JSON.stringify([{ timestamp: new Date().toISOString(), version: 1, type, tailnet: t.name, message: MESSAGES[type] ?? type, data }]);
      this.deliver(w.id, w.endpointUrl, w.secret, body, 1);
    }
  }

  private deliver(id: string, url: string, secret: string, body: string, attempt: number): void {
    const p = (async () => {
      const t = Math.floor(Date.now() / 1000);
      try {
        const res = await this.http.post(url, body, { 'content-type': 'application/json', 'tailscale-webhook-signature': signWebhook(secret, t, body) });
        if (res.status >= 200 && res.status < 300) {
          this.counts.delivered++;
          return;
        }
        throw new Error(`endpoint answered ${res.status}`);
      } catch (err) {
        this.counts.failedAttempts++;
        if (this.closed || attempt >= MAX_ATTEMPTS) {
          this.counts.givenUp++;
          this.log.warn({ webhook: id, attempt, err: (err as Error).message }, 'webhook delivery failed; giving up');
          return;
        }
        const delay = backoffMs(attempt, this.baseDelayMs, Infinity, Math.random());
        this.log.info({ webhook: id, attempt, err: (err as Error).message, retryInMs: Math.round(delay) }, 'webhook delivery failed; retrying');
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          this.deliver(id, url, secret, body, attempt + 1);
        }, delay);
        timer.unref();
        this.timers.add(timer);
      }
    })();
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** Waits for deliveries in flight (used by tests and shutdown). */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await Promise.race([this.idle(), new Promise((r) => setTimeout(r, 2000).unref())]);
    await this.http.close();
  }
}
