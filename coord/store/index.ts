// coord's store: SQLite through better-sqlite3 (synchronous; keep transactions short). Every
// configuration write that touches several rows runs in one transaction, so nothing is half-written.
import Database from 'better-sqlite3';
import { API_KEY_MAX_SECONDS, secureDbFile } from './files.js';
import { NonceLedger } from './nonces.js';
import { MIGRATIONS } from './migrations.js';
import { ip6For, randomIp4 } from '../ipam.js';
import { newSecret, randomToken, type NewSecret } from '../secrets.js';
import { Conflict, NotFound } from '../errors.js';
import { dnsLabel, type AuditEntry, type AuditInput, type Device, type DeviceInvite, type DeviceInviteAcceptance, type Key, type KeyType, type LogStream, type LogStreamConfig, type RelayRecord, type Role, type Share, type Tailnet, type User, type UserInvite, type UserStatus, type Webhook } from './model.js';
import { auditFrom, deviceFrom, inviteFrom, keyFrom, logStreamFrom, relayFrom, shareFrom, tailnetFrom, userFrom, userInviteFrom, webhookFrom } from './rows.js';

export { Conflict, NotFound };
export * from './model.js';

const now = () => new Date().toISOString();
const json = (v: unknown) => JSON.stringify(v);

const DEVICE_COLUMNS: Record<string, string> = {
  userId: 'user_id', nodeKey: 'node_key', hostname: 'hostname', name: 'name', tags: 'tags', os: 'os',
  clientVersion: 'client_version', endpoints: 'endpoints', advertisedRoutes: 'advertised_routes',
  enabledRoutes: 'enabled_routes', posture: 'posture', authorized: 'authorized', ephemeral: 'ephemeral',
  keyExpiryDisabled: 'key_expiry_disabled', lastSeen: 'last_seen', expires: 'expires', authKeyId: 'auth_key_id',
  discoKey: 'disco_key', homeRelay: 'home_relay',
};

export class Store {
  private readonly db: Database.Database;
  // One transaction function for every transaction: better-sqlite3 prepares BEGIN/COMMIT per function.
  private readonly txFn: (fn: () => unknown) => unknown;

  constructor(path: string) {
    secureDbFile(path);
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.txFn = this.db.transaction((fn: () => unknown) => fn());
    this.migrate();
  }

  /** Applies the migrations the database has not seen yet, each in its own transaction. */
  private migrate(): void {
    const current = this.db.pragma('user_version', { simple: true }) as number;
    if (current > MIGRATIONS.length) {
      throw new Error(`database schema version ${current} is newer than this coord (${MIGRATIONS.length}); upgrade coord`);
    }
    for (let v = current; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  private readonly stmts = new Map<string, Database.Statement>();

  /** A prepared statement, prepared once per SQL text. */
  private stmt(sql: string): Database.Statement {
    let st = this.stmts.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.stmts.set(sql, st);
    }
    return st;
  }

  /** The first row of a query, converted to the model; undefined when there is none. */
  private one<R, T>(sql: string, from: (r: R) => T, ...args: unknown[]): T | undefined {
    const r = this.stmt(sql).get(...args) as R | undefined;
    return r && from(r);
  }

  /** Every row of a query, converted to the model. */
  private all<R, T>(sql: string, from: (r: R) => T, ...args: unknown[]): T[] {
    return (this.stmt(sql).all(...args) as R[]).map((r) => from(r));
  }

  schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  close(): void {
    this.db.close();
  }

  private nonceLedger: NonceLedger | undefined;

  /** Records a signed machine request's nonce until `expires` (unix ms); false for a replay, across restarts. */
  useNonce(key: string, now: number, expires: number): boolean {
    return (this.nonceLedger ??= new NonceLedger(this.db)).use(key, now, expires);
  }

  /** Runs fn in one transaction (nested calls become savepoints). */
  tx<T>(fn: () => T): T {
    return this.txFn(fn) as T;
  }

  // ── relays (the relay map's extra relays) ──────────────────────────────────────

  /** Adds a relay and returns its secret (shown once; only its hash is kept). */
  addRelay(r: { name: string; url: string; stunPort: number }): { relay: RelayRecord; secret: string } {
    return this.tx(() => {
      if (this.stmt('SELECT 1 FROM relays WHERE name = ?').get(r.name)) throw new Conflict(`relay "${r.name}" already exists`);
      const s = newSecret('relay', 'r');
      this.stmt('INSERT INTO relays (name, url, stun_port, secret_id, secret_hash, created) VALUES (?, ?, ?, ?, ?, ?)')
        .run(r.name, r.url, r.stunPort, s.id, s.hash, now());
      return { relay: this.getRelay(r.name)!, secret: s.secret };
    });
  }

  getRelay(name: string): RelayRecord | undefined {
    return this.one('SELECT * FROM relays WHERE name = ?', relayFrom, name);
  }

  getRelayBySecretId(id: string): RelayRecord | undefined {
    return this.one('SELECT * FROM relays WHERE secret_id = ?', relayFrom, id);
  }

  /** The extra relays, in the order they were added. */
  listRelays(): RelayRecord[] {
    return this.all('SELECT * FROM relays ORDER BY created, rowid', relayFrom);
  }

  /** Changes a relay's URL or STUN port (what is left out stays). */
  updateRelay(name: string, patch: { url?: string; stunPort?: number }): RelayRecord {
    const r = this.getRelay(name);
    if (!r) throw new NotFound(`no relay "${name}"`);
    this.stmt('UPDATE relays SET url = ?, stun_port = ? WHERE name = ?').run(patch.url ?? r.url, patch.stunPort ?? r.stunPort, name);
    return this.getRelay(name)!;
  }

  /** A new secret for the relay (the old one stops working at once); returns it (shown once). */
  rotateRelaySecret(name: string): string {
    if (!this.getRelay(name)) throw new NotFound(`no relay "${name}"`);
    const s = newSecret('relay', 'r');
    this.stmt('UPDATE relays SET secret_id = ?, secret_hash = ? WHERE name = ?').run(s.id, s.hash, name);
    return s.secret;
  }

  removeRelay(name: string): void {
    if (this.stmt('DELETE FROM relays WHERE name = ?').run(name).changes === 0) throw new NotFound(`no relay "${name}"`);
  }

  // ── tailnets ────────────────────────────────────────────────────────────────

  createTailnet(name: string, ownerEmail: string, policy: string, policyEtag: string): { tailnet: Tailnet; owner: User; apiKey: NewSecret; apiKeyExpires: string } {
    return this.tx(() => {
      if (this.stmt('SELECT 1 FROM tailnets WHERE name = ?').get(name)) throw new Conflict(`network "${name}" already exists`);
      const base = dnsLabel(name.replace(/@/g, '-').replace(/\./g, '-'));
      let domain = `${base}.meshward.internal`;
      for (let i = 2; this.stmt('SELECT 1 FROM tailnets WHERE domain = ?').get(domain); i++) {
        domain = `${base}-${i}.meshward.internal`;
      }
      const created = now();
      const info = this.stmt('INSERT INTO tailnets (name, domain, created, policy, policy_etag, settings, dns) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(name, domain, created, policy, policyEtag, json({}), json({ nameservers: [], searchPaths: [], magicDNS: true }));
      const tailnetId = Number(info.lastInsertRowid);
      const owner = this.createUser(tailnetId, ownerEmail, 'owner');
      const apiKey = this.createKey({ tailnetId, keyType: 'api', userId: owner.id, description: 'first owner key', expires: new Date(Date.now() + API_KEY_MAX_SECONDS * 1000).toISOString() });
      return { tailnet: this.getTailnet(tailnetId)!, owner, apiKey: apiKey.secret, apiKeyExpires: apiKey.key.expires! };
    });
  }

  getTailnet(id: number): Tailnet | undefined {
    return this.one('SELECT * FROM tailnets WHERE id = ?', tailnetFrom, id);
  }

  getTailnetByName(name: string): Tailnet | undefined {
    return this.one('SELECT * FROM tailnets WHERE name = ?', tailnetFrom, name);
  }

  listTailnets(): Tailnet[] {
    return this.all('SELECT * FROM tailnets ORDER BY id', tailnetFrom);
  }

  setPolicy(tailnetId: number, policy: string, etag: string): void {
    this.stmt('UPDATE tailnets SET policy = ?, policy_etag = ? WHERE id = ?').run(policy, etag, tailnetId);
  }

  setTailnetSettings(tailnetId: number, settings: Record<string, unknown>): void {
    this.stmt('UPDATE tailnets SET settings = ? WHERE id = ?').run(json(settings), tailnetId);
  }

  setTailnetDns(tailnetId: number, dns: Record<string, unknown>): void {
    this.stmt('UPDATE tailnets SET dns = ? WHERE id = ?').run(json(dns), tailnetId);
  }

  renameTailnet(tailnetId: number, name: string): void {
    if (this.stmt('SELECT 1 FROM tailnets WHERE name = ? AND id != ?').get(name, tailnetId)) {
      throw new Conflict(`network "${name}" already exists`);
    }
    this.stmt('UPDATE tailnets SET name = ? WHERE id = ?').run(name, tailnetId);
  }

  // ── users ───────────────────────────────────────────────────────────────────

  createUser(tailnetId: number, email: string, role: Role = 'member', displayName?: string): User {
    if (this.getUserByEmail(tailnetId, email)) throw new Conflict(`user ${email} already exists`);
    const id = 'u' + randomToken(12);
    this.stmt('INSERT INTO users (id, tailnet_id, email, display_name, role, status, created) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(id, tailnetId, email, displayName ?? email.split('@')[0]!, role, 'active', now());
    return this.getUser(id)!;
  }

  getUser(id: string): User | undefined {
    return this.one('SELECT * FROM users WHERE id = ?', userFrom, id);
  }

  /** The names of the tailnets where this email has a user with a password (sign-in without a tailnet name). */
  tailnetsWithPassword(email: string): string[] {
    const rows = this.stmt('SELECT t.name AS name FROM users u JOIN tailnets t ON t.id = u.tailnet_id WHERE lower(u.email) = lower(?) AND u.password_hash IS NOT NULL ORDER BY t.name').all(email) as { name: string }[];
    return rows.map((r) => r.name);
  }

  getUserByEmail(tailnetId: number, email: string): User | undefined {
    return this.one('SELECT * FROM users WHERE tailnet_id = ? AND email = ? COLLATE NOCASE', userFrom, tailnetId, email);
  }

  listUsers(tailnetId: number): User[] {
    return this.all('SELECT * FROM users WHERE tailnet_id = ? ORDER BY created, id', userFrom, tailnetId);
  }

  setUserRole(id: string, role: Role): void {
    this.stmt('UPDATE users SET role = ? WHERE id = ?').run(role, id);
  }

  setUserStatus(id: string, status: UserStatus): void {
    this.stmt('UPDATE users SET status = ? WHERE id = ?').run(status, id);
  }

  setUserPassword(id: string, passwordHash: string): void {
    this.stmt('UPDATE users SET password_hash = ? WHERE id = ?').run(passwordHash, id);
  }

  /** Deletes a user with their keys and devices (the caller checks the rules first). */
  deleteUser(id: string): void {
    this.tx(() => {
      this.stmt('DELETE FROM devices WHERE user_id = ?').run(id);
      this.stmt('DELETE FROM keys WHERE user_id = ? OR device_user_id = ?').run(id, id);
      this.stmt('DELETE FROM users WHERE id = ?').run(id);
    });
  }

  // ── keys ────────────────────────────────────────────────────────────────────

  createKey(k: {
    tailnetId: number; keyType: KeyType; userId: string; deviceUserId?: string | null; reusable?: boolean;
    ephemeral?: boolean; preauthorized?: boolean; tags?: string[]; description?: string; expires: string;
  }): { key: Key; secret: NewSecret } {
    const secret = newSecret(k.keyType === 'session' ? 'session' : k.keyType === 'auth' ? 'auth' : 'api');
    this.stmt(
        `INSERT INTO keys (id, tailnet_id, key_type, hash, user_id, device_user_id, reusable, ephemeral, preauthorized,
           tags, description, created, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        secret.id, k.tailnetId, k.keyType, secret.hash, k.userId, k.deviceUserId ?? null, k.reusable ? 1 : 0,
        k.ephemeral ? 1 : 0, k.preauthorized ? 1 : 0, json(k.tags ?? []), k.description ?? '', now(), k.expires,
      );
    return { key: this.getKey(secret.id)!, secret };
  }

  getKey(id: string): Key | undefined {
    return this.one('SELECT * FROM keys WHERE id = ?', keyFrom, id);
  }

  /**
   * Keys of a tailnet that are not sessions; api keys only the caller's own (as Tailscale lists them);
   * revoked ones only when revoked at or after `revokedSince` (an ISO date-time).
   */
  listKeys(tailnetId: number, callerId: string, revokedSince: string): Key[] {
    return this.all(`SELECT * FROM keys WHERE tailnet_id = ? AND (revoked IS NULL OR revoked >= ?) AND
             (key_type = 'auth' OR (key_type = 'api' AND user_id = ?)) ORDER BY created, id`, keyFrom, tailnetId, revokedSince, callerId);
  }

  revokeKey(id: string): void {
    this.stmt('UPDATE keys SET revoked = ? WHERE id = ? AND revoked IS NULL').run(now(), id);
  }

  countKeyUse(id: string): void {
    this.stmt('UPDATE keys SET uses = uses + 1 WHERE id = ?').run(id);
  }

  // ── devices ─────────────────────────────────────────────────────────────────

  /** Inserts a device, allocating addresses unique across all tailnets and a DNS label unique in its own. */
  createDevice(d: Omit<Device, 'id' | 'num' | 'name' | 'ipv4' | 'ipv6' | 'created' | 'lastSeen' | 'discoKey' | 'homeRelay'> & Partial<Pick<Device, 'discoKey' | 'homeRelay'>>): Device {
    return this.tx(() => {
      const id = 'n' + randomToken(14);
      this.claimNodeKey(d.nodeKey, '');
      const name = this.freeName(d.tailnetId, dnsLabel(d.hostname));
      const taken = this.stmt('SELECT 1 FROM devices WHERE ipv4 = ?');
      let ipv4 = randomIp4();
      while (taken.get(ipv4)) ipv4 = randomIp4();
      this.stmt(
          `INSERT INTO devices (id, tailnet_id, user_id, machine_key, node_key, hostname, name, ipv4, ipv6, tags, os,
             client_version, endpoints, advertised_routes, enabled_routes, posture, authorized, ephemeral,
             key_expiry_disabled, created, last_seen, expires, auth_key_id, disco_key, home_relay)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          id, d.tailnetId, d.userId, d.machineKey, d.nodeKey, d.hostname, name, ipv4, ip6For(ipv4), json(d.tags), d.os,
          d.clientVersion, json(d.endpoints), json(d.advertisedRoutes), json(d.enabledRoutes), json(d.posture),
          d.authorized ? 1 : 0, d.ephemeral ? 1 : 0, d.keyExpiryDisabled ? 1 : 0, now(), now(), d.expires, d.authKeyId,
          d.discoKey ?? '', d.homeRelay ?? '',
        );
      return this.getDevice(id)!;
    });
  }

  /** Gives the device this IPv4 address (and the IPv6 one derived from it); one another device holds is a conflict. */
  setDeviceAddress(id: string, ipv4: string): Device {
    return this.tx(() => {
      const holder = this.stmt('SELECT id FROM devices WHERE ipv4 = ?').get(ipv4) as { id: string } | undefined;
      if (holder && holder.id !== id) throw new Conflict(`address ${ipv4} is already used by another device`);
      this.stmt('UPDATE devices SET ipv4 = ?, ipv6 = ? WHERE id = ?').run(ipv4, ip6For(ipv4), id);
      const d = this.getDevice(id);
      if (!d) throw new NotFound(`device ${id} not found`);
      return d;
    });
  }

  /** `label`, or `label-1`, `label-2`, … the first not used by another device of the tailnet. */
  freeName(tailnetId: number, label: string, exceptDeviceId = ''): string {
    const used = this.stmt('SELECT 1 FROM devices WHERE tailnet_id = ? AND name = ? AND id != ?');
    let name = label;
    for (let i = 1; used.get(tailnetId, name, exceptDeviceId); i++) name = `${label.slice(0, 58)}-${i}`;
    return name;
  }

  getDevice(id: string): Device | undefined {
    return this.one('SELECT * FROM devices WHERE id = ?', deviceFrom, id);
  }

  getDeviceByMachineKey(machineKey: string): Device | undefined {
    return this.one('SELECT * FROM devices WHERE machine_key = ?', deviceFrom, machineKey);
  }

  getDeviceByNodeKey(nodeKey: string): Device | undefined {
    return this.one('SELECT * FROM devices WHERE node_key = ?', deviceFrom, nodeKey);
  }

  listDevices(tailnetId: number): Device[] {
    return this.all('SELECT * FROM devices WHERE tailnet_id = ? ORDER BY created, id', deviceFrom, tailnetId);
  }

  updateDevice(id: string, patch: Partial<Omit<Device, 'id' | 'num' | 'tailnetId' | 'machineKey' | 'ipv4' | 'ipv6' | 'created'>>): Device {
    if (patch.nodeKey !== undefined) this.claimNodeKey(patch.nodeKey, id);
    const sets: string[] = [];
    const values: unknown[] = [];
    for (const [k, v] of Object.entries(patch)) {
      const col = DEVICE_COLUMNS[k];
      if (!col || v === undefined) continue;
      sets.push(`${col} = ?`);
      values.push(typeof v === 'boolean' ? (v ? 1 : 0) : Array.isArray(v) || (v && typeof v === 'object') ? json(v) : v);
    }
    if (sets.length > 0) this.stmt(`UPDATE devices SET ${sets.join(', ')} WHERE id = ?`).run(...values, id);
    const d = this.getDevice(id);
    if (!d) throw new NotFound(`device ${id} not found`);
    return d;
  }

  /**
   * Refuses (Conflict) a node key that another device of any network holds: peers key devices by it
   * and would drop that device in favour of the copy.
   */
  claimNodeKey(nodeKey: string, deviceId: string): void {
    if (this.stmt('SELECT 1 FROM devices WHERE node_key = ? AND id != ?').get(nodeKey, deviceId)) {
      throw new Conflict('this node key is already used by another device; every device needs a WireGuard key of its own');
    }
  }

  deleteDevice(id: string): void {
    this.stmt('DELETE FROM devices WHERE id = ?').run(id);
  }

  // ── device sharing ──────────────────────────────────────────────────────────

  createDeviceInvite(tailnetId: number, deviceId: string, sharerId: string, label: string, email = '', multiUse = false): { invite: DeviceInvite; code: string } {
    const code = newSecret('invite', 'd');
    this.stmt('INSERT INTO device_invites (id, tailnet_id, device_id, sharer_id, label, email, multi_use, code_hash, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(code.id, tailnetId, deviceId, sharerId, label, email, multiUse ? 1 : 0, code.hash, now());
    return { invite: this.getDeviceInvite(code.id)!, code: code.secret };
  }

  /**
   * Records that a device invite was mailed at `at`; with `codeHash`, the mail carried a new code, which
   * replaces the old one. False when the invite is gone or was accepted meanwhile.
   */
  markDeviceInviteMailed(id: string, at: string, codeHash?: Buffer): boolean {
    const info = codeHash
      ? this.stmt('UPDATE device_invites SET last_email_sent_at = ?, code_hash = ? WHERE id = ? AND accepted_by IS NULL').run(at, codeHash, id)
      : this.stmt('UPDATE device_invites SET last_email_sent_at = ? WHERE id = ? AND accepted_by IS NULL').run(at, id);
    return info.changes === 1;
  }

  getDeviceInvite(id: string): DeviceInvite | undefined {
    return this.one('SELECT * FROM device_invites WHERE id = ?', inviteFrom, id);
  }

  listDeviceInvites(deviceId: string): DeviceInvite[] {
    return this.all('SELECT * FROM device_invites WHERE device_id = ? ORDER BY created, id', inviteFrom, deviceId);
  }

  /**
   * Records that `recipient` accepted the invite and returns their share of the device. Undefined when the
   * invite is used up for them: a one-time invite accepted already, a multi-use one this user accepted before.
   */
  acceptDeviceInvite(inv: DeviceInvite, recipient: User): Share | undefined {
    const at = now();
    const info = inv.multiUse
      ? this.stmt('INSERT INTO device_invite_acceptances (invite_id, user_id, accepted_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING').run(inv.id, recipient.id, at)
      : this.stmt('UPDATE device_invites SET accepted_by = ?, accepted_at = ? WHERE id = ? AND accepted_by IS NULL').run(recipient.id, at, inv.id);
    if (info.changes !== 1) return undefined;
    this.stmt(
      `INSERT INTO shares (id, tailnet_id, device_id, sharer_id, recipient_id, recipient_tailnet_id, created, invite_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (device_id, recipient_id) DO NOTHING`,
    ).run(`s${randomToken(12)}`, inv.tailnetId, inv.deviceId, inv.sharerId, recipient.id, recipient.tailnetId, at, inv.id);
    // Already shared with this user by an earlier invite: the share stays as it is.
    return this.shareFor(inv.deviceId, recipient.id)!;
  }

  /** The users who accepted a multi-use invite, first to last. */
  deviceInviteAcceptances(inviteId: string): DeviceInviteAcceptance[] {
    const from = (r: { invite_id: string; user_id: string; accepted_at: string }) => ({ inviteId: r.invite_id, userId: r.user_id, acceptedAt: r.accepted_at });
    return this.all('SELECT * FROM device_invite_acceptances WHERE invite_id = ? ORDER BY accepted_at, rowid', from, inviteId);
  }

  /** The shares an invite made that are still on. */
  sharesOfInvite(inviteId: string): Share[] {
    return this.all('SELECT * FROM shares WHERE invite_id = ? ORDER BY created, id', shareFrom, inviteId);
  }

  /** The share of a device with a user, if any. */
  shareFor(deviceId: string, recipientId: string): Share | undefined {
    return this.one('SELECT * FROM shares WHERE device_id = ? AND recipient_id = ?', shareFrom, deviceId, recipientId);
  }

  deleteDeviceInvite(id: string): void {
    this.stmt('DELETE FROM device_invites WHERE id = ?').run(id);
  }

  getShare(id: string): Share | undefined {
    return this.one('SELECT * FROM shares WHERE id = ?', shareFrom, id);
  }

  deleteShare(id: string): void {
    this.stmt('DELETE FROM shares WHERE id = ?').run(id);
  }

  /** Shares of this tailnet's devices (sharer side). */
  sharesFrom(tailnetId: number): Share[] {
    return this.all('SELECT * FROM shares WHERE tailnet_id = ? ORDER BY created, id', shareFrom, tailnetId);
  }

  /** Shares of other tailnets' devices with this tailnet's users (recipient side). */
  sharesInto(tailnetId: number): Share[] {
    return this.all('SELECT * FROM shares WHERE recipient_tailnet_id = ? ORDER BY created, id', shareFrom, tailnetId);
  }

  // ── user invites ────────────────────────────────────────────────────────────

  /** Stores an invite to join the tailnet; the code is returned once (only its hash is kept). */
  createUserInvite(tailnetId: number, email: string, role: Role, inviterId: string): { invite: UserInvite; code: string } {
    const code = newSecret('invite', 'i');
    this.stmt('INSERT INTO user_invites (id, tailnet_id, email, role, code_hash, inviter_id, created) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(code.id, tailnetId, email, role, code.hash, inviterId, now());
    return { invite: this.getUserInvite(code.id)!, code: code.secret };
  }

  getUserInvite(id: string): UserInvite | undefined {
    return this.one('SELECT * FROM user_invites WHERE id = ?', userInviteFrom, id);
  }

  listUserInvites(tailnetId: number): UserInvite[] {
    return this.all('SELECT * FROM user_invites WHERE tailnet_id = ? ORDER BY created', userInviteFrom, tailnetId);
  }

  /** As markDeviceInviteMailed, for an invite to join the tailnet. */
  markUserInviteMailed(id: string, at: string, codeHash?: Buffer): boolean {
    const info = codeHash
      ? this.stmt('UPDATE user_invites SET last_email_sent_at = ?, code_hash = ? WHERE id = ? AND accepted IS NULL').run(at, codeHash, id)
      : this.stmt('UPDATE user_invites SET last_email_sent_at = ? WHERE id = ? AND accepted IS NULL').run(at, id);
    return info.changes === 1;
  }

  markUserInviteAccepted(id: string): void {
    this.stmt('UPDATE user_invites SET accepted = ? WHERE id = ?').run(now(), id);
  }

  deleteUserInvite(id: string): void {
    this.stmt('DELETE FROM user_invites WHERE id = ?').run(id);
  }

  // ── webhooks ────────────────────────────────────────────────────────────────

  createWebhook(w: Omit<Webhook, 'created' | 'lastModified'>): Webhook {
    const at = now();
    this.stmt(
      `INSERT INTO webhooks (id, tailnet_id, endpoint_url, provider_type, subscriptions, secret, creator_login_name, created, last_modified)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(w.id, w.tailnetId, w.endpointUrl, w.providerType, json(w.subscriptions), w.secret, w.creatorLoginName, at, at);
    return this.getWebhook(w.id)!;
  }

  getWebhook(id: string): Webhook | undefined {
    return this.one('SELECT * FROM webhooks WHERE id = ?', webhookFrom, id);
  }

  listWebhooks(tailnetId: number): Webhook[] {
    return this.all('SELECT * FROM webhooks WHERE tailnet_id = ? ORDER BY created', webhookFrom, tailnetId);
  }

  updateWebhook(id: string, endpointUrl: string, subscriptions: string[]): Webhook {
    this.stmt('UPDATE webhooks SET endpoint_url = ?, subscriptions = ?, last_modified = ? WHERE id = ?').run(endpointUrl, json(subscriptions), now(), id);
    const w = this.getWebhook(id);
    if (!w) throw new NotFound(`webhook ${id} not found`);
    return w;
  }

  setWebhookSecret(id: string, secret: string): Webhook {
    this.stmt('UPDATE webhooks SET secret = ?, last_modified = ? WHERE id = ?').run(secret, now(), id);
    const w = this.getWebhook(id);
    if (!w) throw new NotFound(`webhook ${id} not found`);
    return w;
  }

  deleteWebhook(id: string): void {
    this.stmt('DELETE FROM webhooks WHERE id = ?').run(id);
  }

  // ── audit log ───────────────────────────────────────────────────────────────

  /** Told of every audit entry written (inside its transaction: it may be rolled back), e.g. the log streamer. */
  onAudit: ((tailnetId: number) => void) | undefined;

  addAudit(tailnetId: number, e: AuditInput): AuditEntry {
    const eventTime = now();
    const info = this.stmt('INSERT INTO audit (tailnet_id, event_time, type, origin, actor, target, action, old, new) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(tailnetId, eventTime, e.type, e.origin, json(e.actor), json(e.target), e.action,
        e.old === undefined ? null : json(e.old), e.new === undefined ? null : json(e.new));
    this.onAudit?.(tailnetId);
    return { ...e, id: Number(info.lastInsertRowid), tailnetId, eventTime };
  }

  listAudit(tailnetId: number, start: string, end: string): AuditEntry[] {
    return this.all('SELECT * FROM audit WHERE tailnet_id = ? AND event_time >= ? AND event_time <= ? ORDER BY id', auditFrom, tailnetId, start, end);
  }

  /** The id of the tailnet's newest audit entry (0: none). */
  lastAuditId(tailnetId: number): number {
    return (this.stmt('SELECT COALESCE(MAX(id), 0) AS id FROM audit WHERE tailnet_id = ?').get(tailnetId) as { id: number }).id;
  }

  /** The tailnet's audit entries after `afterId`, oldest first, at most `limit`. */
  auditAfter(tailnetId: number, afterId: number, limit: number): AuditEntry[] {
    return this.all('SELECT * FROM audit WHERE tailnet_id = ? AND id > ? ORDER BY id LIMIT ?', auditFrom, tailnetId, afterId, limit);
  }

  // ── log streams ─────────────────────────────────────────────────────────────

  getLogStream(tailnetId: number, logType: string): LogStream | undefined {
    return this.one('SELECT * FROM log_streams WHERE tailnet_id = ? AND log_type = ?', logStreamFrom, tailnetId, logType);
  }

  listLogStreams(): LogStream[] {
    return this.all('SELECT * FROM log_streams ORDER BY tailnet_id, log_type', logStreamFrom);
  }

  /**
   * Configures a stream. A new one starts after the tailnet's newest audit entry (call before the
   * change's own entry is written, so that entry is the first it sends); a changed one keeps its backlog
   * and counts, and forgets its last error.
   */
  setLogStream(tailnetId: number, logType: string, c: LogStreamConfig): LogStream {
    const at = now();
    this.stmt(
      `INSERT INTO log_streams (tailnet_id, log_type, destination_type, url, user, token, compression, cursor, created, last_modified)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (tailnet_id, log_type) DO UPDATE SET destination_type = excluded.destination_type, url = excluded.url,
         user = excluded.user, token = excluded.token, compression = excluded.compression, last_modified = excluded.last_modified, last_error = ''`,
    ).run(tailnetId, logType, c.destinationType, c.url, c.user, c.token, c.compression, this.lastAuditId(tailnetId), at, at);
    return this.getLogStream(tailnetId, logType)!;
  }

  deleteLogStream(tailnetId: number, logType: string): void {
    this.stmt('DELETE FROM log_streams WHERE tailnet_id = ? AND log_type = ?').run(tailnetId, logType);
  }

  /** How many audit entries wait after the stream's cursor, and their size as stored (bytes). */
  logStreamBacklog(s: Pick<LogStream, 'tailnetId' | 'cursor'>): { entries: number; bytes: number } {
    return this.stmt(`SELECT COUNT(*) AS entries, COALESCE(SUM(${AUDIT_ROW_BYTES}), 0) AS bytes FROM audit WHERE tailnet_id = ? AND id > ?`)
      .get(s.tailnetId, s.cursor) as { entries: number; bytes: number };
  }

  /**
   * Keeps the stream's backlog within `maxEntries` and `maxBytes` (as stored): moves the cursor past the
   * oldest entries that do not fit and counts them as dropped. Returns how many were dropped.
   */
  trimLogStreamBacklog(s: Pick<LogStream, 'tailnetId' | 'logType' | 'cursor'>, maxEntries: number, maxBytes: number, error: (dropped: number) => string): number {
    return this.tx(() => {
      const cut = this.stmt(
        `SELECT id FROM (
           SELECT id, ROW_NUMBER() OVER w AS n, SUM(${AUDIT_ROW_BYTES}) OVER w AS run
           FROM audit WHERE tailnet_id = ? AND id > ? WINDOW w AS (ORDER BY id DESC)
         ) WHERE n > ? OR run > ? ORDER BY id DESC LIMIT 1`,
      ).get(s.tailnetId, s.cursor, maxEntries, maxBytes) as { id: number } | undefined;
      if (!cut) return 0;
      const { n } = this.stmt('SELECT COUNT(*) AS n FROM audit WHERE tailnet_id = ? AND id > ? AND id <= ?').get(s.tailnetId, s.cursor, cut.id) as { n: number };
      const info = this.stmt('UPDATE log_streams SET cursor = ?, dropped_entries = dropped_entries + ?, last_error = ? WHERE tailnet_id = ? AND log_type = ? AND cursor = ?')
        .run(cut.id, n, error(n), s.tailnetId, s.logType, s.cursor);
      return info.changes === 1 ? n : 0;
    });
  }

  /** Records a delivered batch: the cursor moves to its last entry (only forward, and only for the stream it was read from). */
  logStreamDelivered(s: Pick<LogStream, 'tailnetId' | 'logType' | 'created'>, lastId: number, entries: number, bytes: number, at: string): void {
    this.stmt(
      `UPDATE log_streams SET cursor = MAX(cursor, ?), entries_sent = entries_sent + ?, bytes_sent = bytes_sent + ?, requests = requests + 1,
         last_activity = ? WHERE tailnet_id = ? AND log_type = ? AND created = ?`,
    ).run(lastId, entries, bytes, at, s.tailnetId, s.logType, s.created);
  }

  /** Records a failed request and why. */
  logStreamFailed(s: Pick<LogStream, 'tailnetId' | 'logType' | 'created'>, error: string, at: string): void {
    this.stmt(
      `UPDATE log_streams SET requests = requests + 1, failed_requests = failed_requests + 1, last_activity = ?, last_error = ?
       WHERE tailnet_id = ? AND log_type = ? AND created = ?`,
    ).run(at, error, s.tailnetId, s.logType, s.created);
  }
}

/** An audit row's size as stored, in bytes (roughly what it weighs in a request). */
const AUDIT_ROW_BYTES = 'octet_length(event_time) + octet_length(type) + octet_length(origin) + octet_length(actor) + octet_length(target) + octet_length(action) + COALESCE(octet_length(old), 0) + COALESCE(octet_length(new), 0)';
