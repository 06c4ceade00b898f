// Where coord may send what it pushes out (webhooks, log streams). A network admin chooses the URL, and
// coord POSTs to it with retries: without a check that is a blind SSRF into coord's own host and the
// networks around it. So, unless the operator allows it (`coord serve --allow-private-webhooks`), a
// target must resolve to public unicast addresses only: checked when it is configured, and again at
// every delivery on the address actually connected to (so a DNS answer that changes in between gains
// nothing). Deliveries do not follow redirects (a 3xx is a failed delivery), so no redirect can lead
// elsewhere. The POST itself is ./outbound-http.ts.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

/** Why `ip` may not receive webhooks (loopback, private, link-local, …), or null when it is public. */
export function nonPublicReason(ip: string): string | null {
  if (!ipaddr.isValid(ip)) return 'not an IP address';
  let a = ipaddr.parse(ip);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) a = (a as ipaddr.IPv6).toIPv4Address();
  const range = a.range();
  return range === 'unicast' ? null : range;
}

export class WebhookTargetError extends Error {}

/** How refusals name the target: "webhook endpoint" and its field "endpointUrl", or a log stream's. */
export interface TargetKind {
  noun: string;
  field: string;
  /** What coord sends there, plural ("webhooks", "logs"). */
  sends: string;
}

export const WEBHOOK_TARGET: TargetKind = { noun: 'webhook endpoint', field: 'endpointUrl', sends: 'webhooks' };

function refuse(host: string, ip: string, reason: string, kind: TargetKind): WebhookTargetError {
  const where = host === ip ? ip : `${host} (${ip})`;
  return new WebhookTargetError(`${kind.noun} ${where} is a ${reason} address; coord sends ${kind.sends} to public addresses only (an operator may allow others with coord serve --allow-private-webhooks)`);
}

function resolveAll(host: string): Promise<LookupAddress[]> {
  return new Promise((resolve, reject) => dnsLookup(host, { all: true }, (err, addrs) => (err ? reject(err) : resolve(addrs))));
}

/**
 * Checks an endpoint URL at creation: http(s), and (unless `allowPrivate`) every address its host
 * resolves to is public. Throws WebhookTargetError with the reason.
 */
export async function checkWebhookTarget(url: string, allowPrivate: boolean, kind: TargetKind = WEBHOOK_TARGET): Promise<void> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new WebhookTargetError(`"${kind.field}" is not a URL`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new WebhookTargetError(`"${kind.field}" must be an http(s) URL`);
  if (allowPrivate) return;
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  let addrs: LookupAddress[];
  try {
    addrs = isIP(host) ? [{ address: host, family: isIP(host) }] : await resolveAll(host);
  } catch (err) {
    throw new WebhookTargetError(`${kind.noun} host ${JSON.stringify(host)} does not resolve: ${(err as Error).message}`);
  }
  for (const a of addrs) {
    const reason = nonPublicReason(a.address);
    if (reason) throw refuse(host, a.address, reason, kind);
  }
}

/** For a delivery to an IP literal (no DNS lookup happens): throws when it is not public. */
export function checkLiteralTarget(url: string, allowPrivate: boolean, kind: TargetKind = WEBHOOK_TARGET): void {
  if (allowPrivate) return;
  const host = new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
  if (!isIP(host)) return;
  const reason = nonPublicReason(host);
  if (reason) throw refuse(host, host, reason, kind);
}

/**
 * A DNS lookup for outgoing connections that fails when the name resolves to a non-public address:
 * the check happens on the very address the socket then connects to. Refusals name the target as `kind`.
 */
export const publicOnlyLookupFor = (kind: TargetKind): LookupFunction => (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (err, addrs) => {
    if (err) return (callback as (e: Error | null, a: LookupAddress[] | string, f?: number) => void)(err, [], 0);
    const list = addrs as LookupAddress[];
    for (const a of list) {
      const reason = nonPublicReason(a.address);
      if (reason) return (callback as (e: Error) => void)(refuse(hostname, a.address, reason, kind));
    }
    if ((options as { all?: boolean }).all) return (callback as (e: null, a: LookupAddress[]) => void)(null, list);
    const first = list[0];
    if (!first) return (callback as (e: Error) => void)(new Error(`${hostname} has no address`));
    (callback as (e: null, a: string, f: number) => void)(null, first.address, first.family);
  });
};

export const publicOnlyLookup = publicOnlyLookupFor(WEBHOOK_TARGET);
