// The tailnet's own configuration: /dns/*, /settings, /name, /billing.
import { billingOf, dnsOf, settingsOf, splitDnsOf, type DnsField } from '../../domain/index.js';
import { bodyObject, route, tailnetParam, type Answer, type Call } from './call.js';

/** Each DNS endpoint's field in the request and answer bodies. */
const DNS_BODY_FIELD: Record<DnsField, string> = { nameservers: 'dns', searchPaths: 'searchPaths', magicDNS: 'magicDNS' };

function dnsGet(field: DnsField) {
  return (c: Call): Answer => {
    const dns = dnsOf(tailnetParam(c));
    return { body: { [DNS_BODY_FIELD[field]]: dns[field] } };
  };
}

function dnsSet(field: DnsField) {
  return async (c: Call): Promise<Answer> => {
    const t = tailnetParam(c);
    const dns = c.domain.tailnets.setDns(c.caller, t, field, (await bodyObject(c))[DNS_BODY_FIELD[field]]);
    // Setting nameservers answers whether MagicDNS is on too, as Tailscale does.
    const body = field === 'nameservers' ? { dns: dns.nameservers, magicDNS: dns.magicDNS } : { [DNS_BODY_FIELD[field]]: dns[field] };
    return { body };
  };
}

function getSplitDns(c: Call): Answer {
  return { body: splitDnsOf(tailnetParam(c)) };
}

function setSplitDns(replace: boolean) {
  return async (c: Call): Promise<Answer> => {
    const t = tailnetParam(c);
    return { body: c.domain.tailnets.setSplitDns(c.caller, t, await bodyObject(c), replace) };
  };
}

function getSettings(c: Call): Answer {
  return { body: settingsOf(tailnetParam(c)) };
}

async function patchSettings(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  return { body: c.domain.tailnets.patchSettings(c.caller, t, await bodyObject(c)) };
}

async function renameTailnet(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  return { body: { name: c.domain.tailnets.rename(c.caller, t, (await bodyObject(c)).name) } };
}

function getContacts(c: Call): Answer {
  return { body: c.domain.tailnets.contacts(tailnetParam(c)) };
}

async function updateContact(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  c.domain.tailnets.setContact(c.caller, t, c.params.type!, await bodyObject(c));
  return { body: {} };
}

function getBilling(c: Call): Answer {
  return { body: billingOf(tailnetParam(c)) };
}

function setBilling(field: 'plan' | 'contact') {
  return async (c: Call): Promise<Answer> => {
    const t = tailnetParam(c);
    return { body: c.domain.tailnets.setBilling(c.caller, t, field, await bodyObject(c)) };
  };
}

export const dnsRoutes = [
  route('GET', '/tailnet/:t/dns/nameservers', 'network:read', dnsGet('nameservers')),
  route('GET', '/tailnet/:t/dns/searchpaths', 'network:read', dnsGet('searchPaths')),
  route('GET', '/tailnet/:t/dns/preferences', 'network:read', dnsGet('magicDNS')),
  route('POST', '/tailnet/:t/dns/nameservers', 'network:write', dnsSet('nameservers')),
  route('POST', '/tailnet/:t/dns/searchpaths', 'network:write', dnsSet('searchPaths')),
  route('POST', '/tailnet/:t/dns/preferences', 'network:write', dnsSet('magicDNS')),
  route('GET', '/tailnet/:t/dns/split-dns', 'network:read', getSplitDns),
  route('PATCH', '/tailnet/:t/dns/split-dns', 'network:write', setSplitDns(false)),
  route('PUT', '/tailnet/:t/dns/split-dns', 'network:write', setSplitDns(true)),
];

export const settingsRoutes = [
  route('GET', '/tailnet/:t/settings', 'feature:read', getSettings),
  route('PATCH', '/tailnet/:t/settings', 'feature:write', patchSettings),
];

export const nameRoutes = [route('POST', '/tailnet/:t/name', 'name:write', renameTailnet)];

export const billingRoutes = [
  route('GET', '/tailnet/:t/billing', 'billing:read', getBilling),
  route('POST', '/tailnet/:t/billing/plan', 'billing:write', setBilling('plan')),
  route('POST', '/tailnet/:t/billing/contact', 'billing:contact', setBilling('contact')),
  // The account, support and security contacts: who reads and writes the billing contact.
  route('GET', '/tailnet/:t/contacts', 'billing:read', getContacts),
  route('PATCH', '/tailnet/:t/contacts/:type', 'billing:contact', updateContact),
];
