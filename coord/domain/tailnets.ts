// A tailnet's own configuration: creating and listing tailnets (coord's CLI, on the server), DNS,
// feature settings, its name, and billing contact.
import { InvalidInput, NotFound } from '../errors.js';
import type { Store, Tailnet } from '../store/index.js';
import { Operations, type Caller } from './context.js';
import { isDomainName } from '../../wire/names.js';
import { bool, email, isIp, optionalText, str, strList, TAILNET_NAME_RE } from './input.js';
import { DEFAULT_POLICY, etagOf } from './policy.js';

export type DnsField = 'nameservers' | 'searchPaths' | 'magicDNS';

export interface DnsSettings {
  nameservers: string[];
  searchPaths: string[];
  magicDNS: boolean;
}

/** Split DNS: domain → the nameservers for names under it. */
export type SplitDns = Record<string, string[]>;

/** Bounds that keep a netmap (sent to every device) small whatever an admin types. */
const MAX_NAMESERVERS = 16;
const MAX_SEARCH_PATHS = 32;
const MAX_SPLIT_DOMAINS = 64;
/** A billing plan's name: a word or a few ("self-hosted", "Enterprise 2026"). */
const PLAN_RE = /^[A-Za-z0-9][A-Za-z0-9 ._+-]{0,63}$/;

function lowerDomain(d: string): string {
  return d.toLowerCase().replace(/\.$/, '');
}

/** A list of nameserver addresses: each an IP, no duplicates, a bounded count. */
function checkNameservers(value: unknown, field: string): string[] {
  const list = strList(value, field, MAX_NAMESERVERS, 64);
  if (list.length > MAX_NAMESERVERS) throw new InvalidInput(`"${field}": at most ${MAX_NAMESERVERS} nameservers`);
  const bad = list.filter((ip) => !isIp(ip));
  if (bad.length > 0) throw new InvalidInput(`invalid nameserver address: ${bad.map((b) => JSON.stringify(b.slice(0, 64))).join(', ')} (an IPv4 or IPv6 address)`);
  const dup = list.find((ip, i) => list.indexOf(ip) !== i);
  if (dup !== undefined) throw new InvalidInput(`nameserver ${dup} is listed twice`);
  return list;
}

function checkDomain(d: string, field: string): string {
  if (!isDomainName(d)) throw new InvalidInput(`"${field}": ${JSON.stringify(d.slice(0, 80))} is not a domain name (labels of letters, digits and dashes, separated by dots)`);
  return lowerDomain(d);
}

export function splitDnsOf(t: Tailnet): SplitDns {
  const raw = t.dns.splitDns;
  return raw && typeof raw === 'object' && !Array.isArray(raw) ? { ...(raw as SplitDns) } : {};
}

/** Who may accept devices shared from other tailnets: nobody, owners and admins, or every role the role table lets. */
export type JoinExternalRole = 'none' | 'admin' | 'member';

const SETTINGS_DEFAULTS = {
  devicesApprovalOn: false, devicesAutoUpdatesOn: false, devicesKeyDurationDays: 180, usersApprovalOn: false,
  usersRoleAllowedToJoinExternalTailnets: 'member' as JoinExternalRole,
  // Features this server does not have (flow logs, regional routing, posture identity collection): always off.
  networkFlowLoggingOn: false, regionalRoutingOn: false, postureIdentityCollectionOn: false,
};
export type Settings = typeof SETTINGS_DEFAULTS;

const boolean = (v: unknown) => (typeof v === 'boolean' ? null : 'must be true or false');
const notOffered = (v: unknown) => (v === false ? null : 'cannot be turned on: this server does not offer the feature');

/** Each setting's check: null when the value is good, else what is wrong. */
const SETTINGS_CHECK: Record<string, (v: unknown) => string | null> = {
  devicesApprovalOn: boolean,
  devicesAutoUpdatesOn: boolean,
  usersApprovalOn: boolean,
  devicesKeyDurationDays: (v) => (Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 180 ? null : 'must be a whole number of days from 1 to 180'),
  usersRoleAllowedToJoinExternalTailnets: (v) => (v === 'none' || v === 'admin' || v === 'member' ? null : 'must be "none", "admin" or "member"'),
  networkFlowLoggingOn: notOffered,
  regionalRoutingOn: notOffered,
  postureIdentityCollectionOn: notOffered,
};

/** The tailnet's feature settings, defaults filled in. */
export function settingsOf(t: Tailnet): Settings {
  const s = { ...SETTINGS_DEFAULTS };
  for (const k of Object.keys(SETTINGS_DEFAULTS)) if (t.settings[k] !== undefined) (s as Record<string, unknown>)[k] = t.settings[k];
  return s;
}

export function dnsOf(t: Tailnet): DnsSettings {
  return {
    nameservers: (t.dns.nameservers as string[] | undefined) ?? [],
    searchPaths: (t.dns.searchPaths as string[] | undefined) ?? [],
    magicDNS: t.dns.magicDNS !== false,
  };
}

export interface Billing {
  plan: unknown;
  contact: unknown;
}

export function billingOf(t: Tailnet): Billing {
  const b = (t.settings.billing ?? {}) as Record<string, unknown>;
  return { plan: b.plan ?? 'self-hosted', contact: b.contact ?? null };
}

/** The tailnet's contacts (Tailscale's account, support and security contacts). */
export const CONTACT_TYPES = ['account', 'support', 'security'] as const;
export type ContactType = (typeof CONTACT_TYPES)[number];
export interface Contact {
  email: string;
  /** Always false: this server does not send verification mail, so it takes an address as given. */
  needsVerification: boolean;
}

/** Each contact: the address set for it, else the owner's (`ownerEmail`). */
export function contactsOf(t: Tailnet, ownerEmail: string): Record<ContactType, Contact> {
  const set = (t.settings.contacts ?? {}) as Record<string, unknown>;
  const one = (type: ContactType): Contact => ({ email: typeof set[type] === 'string' ? (set[type] as string) : ownerEmail, needsVerification: false });
  return { account: one('account'), support: one('support'), security: one('security') };
}

export function checkTailnetName(name: string): string {
  if (!TAILNET_NAME_RE.test(name)) throw new InvalidInput(`network name ${JSON.stringify(name)}: use letters, digits and . @ _ - (at most 100 characters)`);
  return name;
}

/** Creates a tailnet with its owner and the owner's first API key (coord's CLI, on the server). */
export function createTailnet(store: Store, name: string, ownerEmail: string) {
  checkTailnetName(name);
  return store.createTailnet(name, ownerEmail, DEFAULT_POLICY, etagOf(DEFAULT_POLICY));
}

/** Every tailnet with its counts of users and devices. */
export function listTailnets(store: Store) {
  return store.listTailnets().map((t) => ({ name: t.name, domain: t.domain, created: t.created, devices: store.listDevices(t.id).length, users: store.listUsers(t.id).length }));
}

export class TailnetOperations extends Operations {
  /** Sets one DNS field from its request value; returns the DNS settings after the change. */
  setDns(c: Caller, t: Tailnet, field: DnsField, value: unknown): DnsSettings {
    const dns = { ...t.dns };
    if (field === 'nameservers') {
      dns.nameservers = checkNameservers(value, 'dns');
    } else if (field === 'searchPaths') {
      const list = strList(value, 'searchPaths', MAX_SEARCH_PATHS, 253).map((d) => checkDomain(d, 'searchPaths'));
      if (list.length > MAX_SEARCH_PATHS) throw new InvalidInput(`"searchPaths": at most ${MAX_SEARCH_PATHS} domains`);
      const dup = list.find((d, i) => list.indexOf(d) !== i);
      if (dup !== undefined) throw new InvalidInput(`search path ${dup} is listed twice`);
      dns.searchPaths = list;
    } else {
      dns.magicDNS = bool(value, 'magicDNS');
    }
    const { store } = this;
    store.tx(() => {
      store.setTailnetDns(t.id, dns);
      this.audit(c, 'UPDATE', { id: String(t.id), name: t.name, type: 'TAILNET', property: `DNS_${field.toUpperCase()}` }, t.dns[field], dns[field]);
    });
    this.hub.tailnetChanged(t.id);
    return dnsOf({ ...t, dns });
  }

  /**
   * Split DNS, as Tailscale's API: `replace` (PUT) sets the whole map; otherwise (PATCH) each domain in
   * the body is set, or removed when its value is null. Returns the map after the change.
   */
  setSplitDns(c: Caller, t: Tailnet, body: Record<string, unknown>, replace: boolean): SplitDns {
    if (Object.keys(body).length > MAX_SPLIT_DOMAINS) throw new InvalidInput(`split-dns: at most ${MAX_SPLIT_DOMAINS} domains`);
    const next: SplitDns = replace ? {} : splitDnsOf(t);
    for (const [domain, value] of Object.entries(body)) {
      const d = checkDomain(domain, 'split-dns');
      // null: no nameservers for the domain (PATCH removes it; in a PUT it is simply not in the new set).
      if (value === null) {
        delete next[d];
        continue;
      }
      const servers = checkNameservers(value, d);
      if (servers.length === 0) throw new InvalidInput(`split-dns: ${d} needs at least one nameserver (null removes it)`);
      next[d] = servers;
    }
    if (Object.keys(next).length > MAX_SPLIT_DOMAINS) throw new InvalidInput(`split-dns: at most ${MAX_SPLIT_DOMAINS} domains`);
    const old = splitDnsOf(t);
    const { store } = this;
    store.tx(() => {
      store.setTailnetDns(t.id, { ...t.dns, splitDns: next });
      this.audit(c, 'UPDATE', { id: String(t.id), name: t.name, type: 'TAILNET', property: 'DNS_SPLIT_DNS' }, old, next);
    });
    this.hub.tailnetChanged(t.id);
    return next;
  }

  patchSettings(c: Caller, t: Tailnet, patch: Record<string, unknown>): Settings {
    const changes: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(patch)) {
      if (!Object.hasOwn(SETTINGS_CHECK, k)) throw new InvalidInput(`unknown setting ${JSON.stringify(k.slice(0, 64))} (known: ${Object.keys(SETTINGS_CHECK).join(', ')})`);
      const wrong = SETTINGS_CHECK[k]!(v);
      if (wrong !== null) throw new InvalidInput(`"${k}" ${wrong}`);
      changes[k] = v;
    }
    const { store } = this;
    const next = { ...t.settings, ...changes };
    store.tx(() => {
      store.setTailnetSettings(t.id, next);
      this.audit(c, 'UPDATE', { id: String(t.id), name: t.name, type: 'TAILNET', property: 'SETTINGS' }, settingsOf(t), changes);
    });
    return settingsOf(store.getTailnet(t.id)!);
  }

  rename(c: Caller, t: Tailnet, value: unknown): string {
    const name = str(value, 'name');
    if (!TAILNET_NAME_RE.test(name)) throw new InvalidInput('"name" may hold letters, digits and . @ _ - (at most 100 characters)');
    const { store } = this;
    store.tx(() => {
      store.renameTailnet(t.id, name);
      this.audit(c, 'UPDATE', { id: String(t.id), name, type: 'TAILNET', property: 'NAME' }, t.name, name);
    });
    this.hub.tailnetChanged(t.id);
    return name;
  }

  /** The owner's email, which each contact falls back to. */
  ownerEmail(t: Tailnet): string {
    return this.store.listUsers(t.id).find((u) => u.role === 'owner')?.email ?? '';
  }

  contacts(t: Tailnet): Record<ContactType, Contact> {
    return contactsOf(t, this.ownerEmail(t));
  }

  /** Sets the account, support or security contact's email address. */
  setContact(c: Caller, t: Tailnet, type: string, b: Record<string, unknown>): Record<ContactType, Contact> {
    if (!(CONTACT_TYPES as readonly string[]).includes(type)) throw new NotFound(`contact type ${JSON.stringify(type.slice(0, 40))} not found (known: ${CONTACT_TYPES.join(', ')})`);
    const address = email(typeof b.email === 'string' ? b.email.trim() : b.email, 'email');
    const old = contactsOf(t, this.ownerEmail(t))[type as ContactType].email;
    const { store } = this;
    store.tx(() => {
      store.setTailnetSettings(t.id, { ...t.settings, contacts: { ...((t.settings.contacts ?? {}) as object), [type]: address } });
      this.audit(c, 'UPDATE', { id: String(t.id), name: t.name, type: 'TAILNET', property: `${type.toUpperCase()}_CONTACT` }, old, address);
    });
    return this.contacts(store.getTailnet(t.id)!);
  }

  setBilling(c: Caller, t: Tailnet, field: 'plan' | 'contact', b: Record<string, unknown>): Billing {
    let value: unknown;
    if (field === 'plan') {
      value = str(b.plan, 'plan', 64);
      if (!PLAN_RE.test(value as string)) throw new InvalidInput('"plan" may hold letters, digits, spaces and . _ + - (at most 64 characters)');
    } else {
      value = { email: email(b.email, 'email'), name: optionalText(b.name, 'name', 100) };
    }
    const { store } = this;
    const old = billingOf(t);
    store.tx(() => {
      store.setTailnetSettings(t.id, { ...t.settings, billing: { ...old, [field]: value } });
      this.audit(c, 'UPDATE', { id: String(t.id), name: t.name, type: 'TAILNET', property: `BILLING_${field.toUpperCase()}` }, old[field as keyof Billing], value);
    });
    return billingOf(store.getTailnet(t.id)!);
  }
}
