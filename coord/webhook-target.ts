// Where coord may send webhooks. A network admin chooses the URL, and coord POSTs to it with retries:
// without a check that is a blind SSRF into coord's own host and the networks around it. So, unless
// the operator allows it (`coord serve --allow-private-webhooks`), an endpoint must resolve to public
// unicast addresses only: checked when a webhook is created or changed, and again at every delivery on
// the address actually connected to (so a DNS answer that changes in between gains nothing). Webhook
// deliveries do not follow redirects (a 3xx is a failed delivery), so no redirect can lead elsewhere.
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

function refuse(host: string, ip: string, reason: string): WebhookTargetError {
  const what = host === ip ? ip : `${host} (${ip})`;
  return new WebhookTargetError(`webhook endpoint ${what} is a ${reason} address; coord sends webhooks to public addresses only (an operator may allow others with coord serve --allow-private-webhooks)`);
}

function resolveAll(host: string): Promise<LookupAddress[]> {
  return new Promise((resolve, reject) => dnsLookup(host, { all: true }, (err, addrs) => (err ? reject(err) : resolve(addrs))));
}

/**
 * Checks an endpoint URL at creation: http(s), and (unless `allowPrivate`) every address its host
 * resolves to is public. Throws WebhookTargetError with the reason.
 */
export async function checkWebhookTarget(url: string, allowPrivate: boolean): Promise<void> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new WebhookTargetError('"endpointUrl" is not a URL');
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new WebhookTargetError('"endpointUrl" must be an http(s) URL');
  if (allowPrivate) return;
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  let addrs: LookupAddress[];
  try {
    addrs = isIP(host) ? [{ address: host, family: isIP(host) }] : await resolveAll(host);
  } catch (err) {
    throw new WebhookTargetError(`webhook endpoint host ${JSON.stringify(host)} does not resolve: ${(err as Error).message}`);
  }
  for (const a of addrs) {
    const reason = nonPublicReason(a.address);
    if (reason) throw refuse(host, a.address, reason);
  }
}

/** For a delivery to an IP literal (no DNS lookup happens): throws when it is not public. */
export function checkLiteralTarget(url: string, allowPrivate: boolean): void {
  if (allowPrivate) return;
  const host = new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
  if (!isIP(host)) return;
  const reason = nonPublicReason(host);
  if (reason) throw refuse(host, host, reason);
}

/**
 * A DNS lookup for outgoing webhook connections that fails when the name resolves to a non-public
 * address: the check happens on the very address the socket then connects to.
 */
export const publicOnlyLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (err, addrs) => {
    if (err) return (callback as (e: Error | null, a: LookupAddress[] | string, f?: number) => void)(err, [], 0);
    const list = addrs as LookupAddress[];
    for (const a of list) {
      const reason = nonPublicReason(a.address);
      if (reason) return (callback as (e: Error) => void)(refuse(hostname, a.address, reason));
    }
    if ((options as { all?: boolean }).all) return (callback as (e: null, a: LookupAddress[]) => void)(null, list);
    const first = list[0];
    if (!first) return (callback as (e: Error) => void)(new Error(`${hostname} has no address`));
    (callback as (e: null, a: string, f: number) => void)(null, first.address, first.family);
  });
};
