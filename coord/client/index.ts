// A typed client of coord's admin API (/api/v2, docs/api.md) over HTTP: what coord's admin CLI, the
// demo and the tests use. It speaks only HTTP and the documented JSON, and imports nothing of the server.
//
//   const admin = new AdminClient('http://127.0.0.1:8080', apiKey);
//   const devices = await admin.devices();             // an error answer throws AdminApiError
//   const r = await admin.request('GET', '/tailnet/-/devices');   // any request; never throws on a status
import { request as undiciRequest, type Dispatcher } from 'undici';
import type {
  AcceptedShare, AuditLog, CreateKeyRequest, Device, DeviceInvite, DevicePostureAttributes, DeviceRoutes, ErrorBody, Key, LogStreamConfig,
  LogStreamStatus, NewKey, NewUserInvite, SetLogStreamRequest, PolicyPreview, PolicyValidation, Role, Session, User, UserInvite,
} from './types.js';

export type * from './types.js';

/** An answer of the admin API: `body` is the parsed JSON (undefined when the answer is not JSON). */
export interface ApiResponse<T = unknown> {
  status: number;
  body: T;
  text: string;
  headers: Headers;
}

/** coord answered with an error status; the message is coord's, with its `data` (failing tests) after it. */
export class AdminApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorBody | undefined,
  ) {
    const data = body?.data === undefined ? '' : '\n' + JSON.stringify(body.data, null, 2);
    super(`${body?.message ?? `coord answered ${status}`}${data}`);
  }
}

export type UserAction = 'approve' | 'suspend' | 'restore' | 'delete';

const HUJSON = { 'content-type': 'application/hujson' };

export class AdminClient {
  readonly url: string;

  /** `url` is coord's base URL; `key` an API key or session token (none: only the public endpoints); `tailnet` "-" is the key's own. */
  constructor(
    url: string,
    private readonly key?: string,
    readonly tailnet = '-',
  ) {
    this.url = url.replace(/\/+$/, '');
  }

  /** Any request under /api/v2. A string body is sent as it is, anything else as JSON. Throws only when coord cannot be reached. */
  async request<T = unknown>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
    const h: Record<string, string> = {};
    if (this.key) h.authorization = `Bearer ${this.key}`;
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    if (payload !== undefined) h['content-type'] = 'application/json';
    // undici's request rather than fetch: fetch refuses some ports (6000, 10080, …) coord may listen on.
    let res: Dispatcher.ResponseData;
    try {
      res = await undiciRequest(`${this.url}/api/v2${path}`, { method: method as Dispatcher.HttpMethod, headers: { ...h, ...headers }, body: payload });
    } catch (err) {
      throw new Error(`cannot reach coord at ${this.url}: ${(err as Error).message}`);
    }
    const text = await res.body.text();
    const answerHeaders = new Headers();
    for (const [name, value] of Object.entries(res.headers)) for (const v of [value ?? []].flat()) answerHeaders.append(name, v);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: res.statusCode, body: parsed as T, text, headers: answerHeaders };
  }

  /** `request`, but an error status throws AdminApiError. */
  async call<T = unknown>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResponse<T>> {
    const r = await this.request<T>(method, path, body, headers);
    if (r.status >= 400) throw new AdminApiError(r.status, r.body as ErrorBody | undefined);
    return r;
  }

  private async answer<T>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<T> {
    return (await this.call<T>(method, path, body, headers)).body;
  }

  /** A path under this client's network: /tailnet/{tailnet}/… */
  private t(path: string): string {
    return `/tailnet/${encodeURIComponent(this.tailnet)}${path}`;
  }

  // ── users ──

  async users(): Promise<User[]> {
    return (await this.answer<{ users: User[] }>('GET', this.t('/users'))).users;
  }

  inviteUsers(invites: { email: string; role?: Role }[]): Promise<NewUserInvite[]> {
    return this.answer('POST', this.t('/user-invites'), invites);
  }

  /** The network's invites to join (the codes are not shown again). */
  userInvites(): Promise<UserInvite[]> {
    return this.answer('GET', this.t('/user-invites'));
  }

  userInvite(id: string): Promise<UserInvite> {
    return this.answer('GET', `/user-invites/${encodeURIComponent(id)}`);
  }

  /** Mails the invite again with a new code (the old link stops working); needs coord to have a mail server. */
  async resendUserInvite(id: string): Promise<void> {
    await this.answer('POST', `/user-invites/${encodeURIComponent(id)}/resend`);
  }

  /** Public: turns an invite code into a user with a password. */
  acceptUserInvite(code: string, password: string): Promise<User> {
    return this.answer('POST', '/user-invites/-/accept', { code, password });
  }

  /** Public: signs in; the session's token works as an API key. */
  login(tailnet: string, email: string, password: string): Promise<Session> {
    return this.answer('POST', '/login', { tailnet, email, password });
  }

  setUserRole(userId: string, role: string): Promise<User> {
    return this.answer('POST', `/users/${encodeURIComponent(userId)}/role`, { role });
  }

  async changeUser(userId: string, action: UserAction): Promise<void> {
    await this.call('POST', `/users/${encodeURIComponent(userId)}/${action}`);
  }

  // ── keys ──

  async keys(): Promise<Key[]> {
    return (await this.answer<{ keys: Key[] }>('GET', this.t('/keys'))).keys;
  }

  createKey(req: CreateKeyRequest): Promise<NewKey> {
    return this.answer('POST', this.t('/keys'), req);
  }

  async revokeKey(id: string): Promise<void> {
    await this.call('DELETE', this.t(`/keys/${encodeURIComponent(id)}`));
  }

  // ── devices ──

  async devices(): Promise<Device[]> {
    return (await this.answer<{ devices: Device[] }>('GET', this.t('/devices'))).devices;
  }

  async authorizeDevice(id: string, authorized = true): Promise<void> {
    await this.call('POST', `/device/${encodeURIComponent(id)}/authorized`, { authorized });
  }

  async renameDevice(id: string, name: string): Promise<void> {
    await this.call('POST', `/device/${encodeURIComponent(id)}/name`, { name });
  }

  async setDeviceTags(id: string, tags: string[]): Promise<void> {
    await this.call('POST', `/device/${encodeURIComponent(id)}/tags`, { tags });
  }

  deviceRoutes(id: string): Promise<DeviceRoutes> {
    return this.answer('GET', `/device/${encodeURIComponent(id)}/routes`);
  }

  setDeviceRoutes(id: string, routes: string[]): Promise<DeviceRoutes> {
    return this.answer('POST', `/device/${encodeURIComponent(id)}/routes`, { routes });
  }

  async expireDevice(id: string): Promise<void> {
    await this.call('POST', `/device/${encodeURIComponent(id)}/expire`);
  }

  async deleteDevice(id: string): Promise<void> {
    await this.call('DELETE', `/device/${encodeURIComponent(id)}`);
  }

  // ── policy ──

  /** The policy file as stored (HuJSON, comments kept) and its ETag. */
  async policy(): Promise<{ text: string; etag: string }> {
    const r = await this.call('GET', this.t('/acl'), undefined, { accept: 'application/hujson' });
    return { text: r.text, etag: r.headers.get('etag') ?? '' };
  }

  /** The policy parsed (without comments), and its ETag. */
  async policyJson(): Promise<{ policy: unknown; etag: string }> {
    const r = await this.call('GET', this.t('/acl'));
    return { policy: r.body, etag: r.headers.get('etag') ?? '' };
  }

  /** Replaces the policy (refused when it does not parse or its tests fail); `ifMatch`: only if still at that ETag. */
  async setPolicy(text: string, ifMatch?: string): Promise<{ etag: string }> {
    const r = await this.call('POST', this.t('/acl'), text, { ...HUJSON, ...(ifMatch ? { 'if-match': ifMatch } : {}) });
    return { etag: r.headers.get('etag') ?? '' };
  }

  /** Checks a policy file (empty: the stored one): {} when valid, else the failing tests in `message`/`data`. */
  validatePolicy(text = ''): Promise<PolicyValidation> {
    return this.answer('POST', this.t('/acl/validate'), text, HUJSON);
  }

  /** What a user may reach, or who may reach an ip:port, under a policy file (empty: the stored one). */
  previewPolicy(who: { user: string } | { ipPort: string }, text = ''): Promise<PolicyPreview> {
    const q = 'user' in who ? `type=user&previewFor=${encodeURIComponent(who.user)}` : `type=ipport&previewFor=${encodeURIComponent(who.ipPort)}`;
    return this.answer('POST', this.t(`/acl/preview?${q}`), text, HUJSON);
  }

  // ── sharing ──

  /** One invite per entry to share a device with a user of another network; each answer has its `inviteUrl`. */
  createDeviceInvites(deviceId: string, invites: { label?: string; email?: string; multiUse?: boolean }[] = [{}]): Promise<DeviceInvite[]> {
    return this.answer('POST', `/device/${encodeURIComponent(deviceId)}/device-invites`, invites);
  }

  deviceInvite(id: string): Promise<DeviceInvite> {
    return this.answer('GET', `/device-invites/${encodeURIComponent(id)}`);
  }

  /** Mails the invite again to its `email` with a new code (the old link stops working); needs a mail server. */
  async resendDeviceInvite(id: string): Promise<void> {
    await this.answer('POST', `/device-invites/${encodeURIComponent(id)}/resend`);
  }

  /** Gives the device a new IPv4 address (its IPv6 one follows). */
  async setDeviceIp(deviceId: string, ipv4: string): Promise<void> {
    await this.answer('POST', `/device/${encodeURIComponent(deviceId)}/ip`, { ipv4 });
  }

  /** The device's posture attributes (its own `node:*` and the custom ones in force) and the custom ones' expiries. */
  deviceAttributes(deviceId: string): Promise<DevicePostureAttributes> {
    return this.answer('GET', `/device/${encodeURIComponent(deviceId)}/attributes`);
  }

  /** Sets a custom posture attribute (`custom:<name>`), optionally until `expiry` (RFC 3339). */
  setDeviceAttribute(deviceId: string, key: string, value: string | number | boolean, expiry?: string): Promise<DevicePostureAttributes> {
    return this.answer('POST', `/device/${encodeURIComponent(deviceId)}/attributes/${encodeURIComponent(key)}`, expiry ? { value, expiry } : { value });
  }

  async deleteDeviceAttribute(deviceId: string, key: string): Promise<void> {
    await this.answer('DELETE', `/device/${encodeURIComponent(deviceId)}/attributes/${encodeURIComponent(key)}`);
  }

  /** Accepts a device invite (the link or its code) into the caller's network. */
  acceptDeviceInvite(invite: string): Promise<AcceptedShare> {
    return this.answer('POST', '/device-invites/-/accept', { invite });
  }

  // ── contacts ──

  contacts(): Promise<Record<'account' | 'support' | 'security', { email: string; needsVerification: boolean }>> {
    return this.answer('GET', this.t('/contacts'));
  }

  async setContact(type: 'account' | 'support' | 'security', email: string): Promise<void> {
    await this.answer('PATCH', this.t(`/contacts/${type}`), { email });
  }

  // ── DNS ──

  async nameservers(): Promise<string[]> {
    return (await this.answer<{ dns: string[] }>('GET', this.t('/dns/nameservers'))).dns;
  }

  async setNameservers(dns: string[]): Promise<string[]> {
    return (await this.answer<{ dns: string[] }>('POST', this.t('/dns/nameservers'), { dns })).dns;
  }

  async searchPaths(): Promise<string[]> {
    return (await this.answer<{ searchPaths: string[] }>('GET', this.t('/dns/searchpaths'))).searchPaths;
  }

  async setSearchPaths(searchPaths: string[]): Promise<string[]> {
    return (await this.answer<{ searchPaths: string[] }>('POST', this.t('/dns/searchpaths'), { searchPaths })).searchPaths;
  }

  async magicDNS(): Promise<boolean> {
    return (await this.answer<{ magicDNS: boolean }>('GET', this.t('/dns/preferences'))).magicDNS;
  }

  async setMagicDNS(magicDNS: boolean): Promise<boolean> {
    return (await this.answer<{ magicDNS: boolean }>('POST', this.t('/dns/preferences'), { magicDNS })).magicDNS;
  }

  splitDns(): Promise<Record<string, string[]>> {
    return this.answer('GET', this.t('/dns/split-dns'));
  }

  /** PATCH: sets the domains given, removes those whose value is null. */
  patchSplitDns(changes: Record<string, string[] | null>): Promise<Record<string, string[]>> {
    return this.answer('PATCH', this.t('/dns/split-dns'), changes);
  }

  // ── audit ──

  auditLog(start: Date): Promise<AuditLog> {
    return this.answer('GET', this.t(`/logging/configuration?start=${encodeURIComponent(start.toISOString())}`));
  }

  // ── log streaming (the configuration log; "configuration" is the only log type) ──

  /** The stream's destination; 404 (AdminApiError) when none is set. */
  logStream(logType = 'configuration'): Promise<LogStreamConfig> {
    return this.answer('GET', this.t(`/logging/${encodeURIComponent(logType)}/stream`));
  }

  setLogStream(req: SetLogStreamRequest, logType = 'configuration'): Promise<LogStreamConfig> {
    return this.answer('PUT', this.t(`/logging/${encodeURIComponent(logType)}/stream`), { logType, ...req });
  }

  /** Stops streaming (none set is no error); entries not yet sent stay in the audit log. */
  async deleteLogStream(logType = 'configuration'): Promise<void> {
    await this.answer('DELETE', this.t(`/logging/${encodeURIComponent(logType)}/stream`));
  }

  logStreamStatus(logType = 'configuration'): Promise<LogStreamStatus> {
    return this.answer('GET', this.t(`/logging/${encodeURIComponent(logType)}/stream/status`));
  }
}
