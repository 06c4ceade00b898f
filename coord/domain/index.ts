// coord's domain layer: every operation on tailnets, users, devices, keys, invites, shares, policy,
// audit and webhooks, over the store and the live tailnets. The admin API, the machine API and the
// server's upkeep call it; it throws the typed errors of ../errors.ts and knows nothing of HTTP.
// One Domain per server: the state it keeps (sign-in limiters) is never shared between servers.
import { AuditOperations } from './audit.js';
import type { DomainDeps } from './context.js';
import { DeviceOperations } from './devices.js';
import { KeyOperations } from './keys.js';
import { LogStreamOperations } from './log-streams.js';
import { MachineOperations } from './machines.js';
import { PolicyOperations } from './policy.js';
import { ShareOperations } from './shares.js';
import { TailnetOperations } from './tailnets.js';
import { UserOperations } from './users.js';
import { WebhookOperations } from './webhooks.js';

export class Domain {
  readonly policy: PolicyOperations;
  readonly shares: ShareOperations;
  readonly devices: DeviceOperations;
  readonly machines: MachineOperations;
  readonly users: UserOperations;
  readonly keys: KeyOperations;
  readonly tailnets: TailnetOperations;
  readonly audit: AuditOperations;
  readonly webhooks: WebhookOperations;
  readonly logStreams: LogStreamOperations;

  constructor(deps: DomainDeps) {
    this.policy = new PolicyOperations(deps);
    this.shares = new ShareOperations(deps);
    this.devices = new DeviceOperations(deps, this.policy, this.shares);
    this.machines = new MachineOperations(deps, this.devices);
    this.users = new UserOperations(deps, this.shares);
    this.keys = new KeyOperations(deps, this.policy);
    this.tailnets = new TailnetOperations(deps);
    this.audit = new AuditOperations(deps);
    this.webhooks = new WebhookOperations(deps);
    this.logStreams = new LogStreamOperations(deps);
  }
}

export type { Caller, DomainDeps, EventSink } from './context.js';
export type { DeviceView } from './devices.js';
export type { UserView, StatusAction } from './users.js';
export type { DnsField, DnsSettings, SplitDns, Settings, Billing } from './tailnets.js';
export { settingsOf, dnsOf, splitDnsOf, billingOf, createTailnet, listTailnets, checkTailnetName } from './tailnets.js';
export { DEFAULT_POLICY, etagOf, checkPolicy, previewSubject, type PreviewSubject } from './policy.js';
export { WEBHOOK_EVENTS } from './webhooks.js';
