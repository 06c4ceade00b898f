// What every part of the domain layer works with: the store, the live tailnets (netmap streams), the
// event sink (webhooks), and who is acting. Audit entries are written inside the change's transaction.
import type { Logger } from 'pino';
import type { LogStreamer } from '../log-stream/streamer.js';
import type { Mailer } from '../mail.js';
import type { NetmapHub } from '../netmap-stream.js';
import type { AuditInput, Store, Tailnet, User } from '../store/index.js';

/** Called after every committed configuration change (webhooks subscribe here). */
export type EventSink = (tailnetId: number, type: string, data: Record<string, unknown>) => void;

export interface DomainDeps {
  store: Store;
  hub: NetmapHub;
  log: Logger;
  onEvent?: EventSink;
  /** Webhooks and log streams may target loopback, link-local and private addresses (`coord serve --allow-private-webhooks`). */
  allowPrivateWebhooks?: boolean;
  /** Delivers the log streams (told of their changes; answers their status). */
  logStreamer?: LogStreamer;
  /** Sends invites by mail (`coord serve --smtp-url`); absent: coord has no mail server. */
  mailer?: Mailer;
}

/** An authenticated admin API caller: a user of one tailnet, through one API or session key. */
export interface Caller {
  user: User;
  tailnet: Tailnet;
  keyId: string;
  /** Through the admin console (a session key) or the API (an API key): the audit entry's origin. */
  via: 'console' | 'api';
}

export type AuditActor = AuditInput['actor'];

export function userActor(u: User): AuditActor {
  return { id: u.id, type: 'USER', loginName: u.email, displayName: u.displayName };
}

export const SYSTEM_ACTOR: AuditActor = { id: '', type: 'SYSTEM', loginName: 'coord', displayName: 'coord' };

/** The base of each family of operations: the dependencies and the audit and event helpers. */
export abstract class Operations {
  constructor(protected readonly deps: DomainDeps) {}

  protected get store(): Store {
    return this.deps.store;
  }

  protected get hub(): NetmapHub {
    return this.deps.hub;
  }

  /** An audit entry by the caller through the admin API (call inside the write's transaction). */
  protected audit(c: Caller, action: string, target: Record<string, unknown>, old?: unknown, neu?: unknown, tailnetId = c.tailnet.id): void {
    this.store.addAudit(tailnetId, { type: 'CONFIG', origin: c.via === 'console' ? 'ADMIN_CONSOLE' : 'CONFIG_API', actor: userActor(c.user), target, action, old, new: neu });
  }

  /** An event of the caller's change, after it committed. */
  protected emit(c: Caller, type: string, data: Record<string, unknown>): void {
    this.deps.onEvent?.(c.tailnet.id, type, { ...data, actor: c.user.email });
  }
}
