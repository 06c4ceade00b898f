// coord's store: SQLite through better-sqlite3 (synchronous; keep transactions short). Every
// configuration write that touches several rows runs in one transaction, so nothing is half-written.
import Database from 'better-sqlite3';
import { API_KEY_MAX_SECONDS, secureDbFile } from './files.js';
import { NonceLedger } from './nonces.js';
import { MIGRATIONS } from './migrations.js';
import { ip6For, randomIp4 } from '../ipam.js';
import { newSecret, randomToken, type NewSecret } from '../secrets.js';

export const ROLES = ['owner', 'admin', 'network-admin', 'it-admin', 'billing-admin', 'auditor', 'member'] as const;
export type Role = (typeof ROLES)[number];
export type UserStatus = 'active' | 'suspended' | 'needs-approval';
export type KeyType = 'auth' | 'api' | 'session';

export interface Tailnet {
  id: number;
  name: string;
  domain: string;
  created: string;
  policy: string;
  policyEtag: string;
  settings: Record<string, unknown>;
  dns: Record<string, unknown>;
}

export interface User {
  id: string;
  tailnetId: number;
  email: string;
  displayName: string;
  role: Role;
  status: UserStatus;
  passwordHash: string | null;
  created: string;
  lastSeen: string | null;
}

export interface Key {
  id: string;
  tailnetId: number;
  keyType: KeyType;
  hash: Buffer;
  userId: string;
  deviceUserId: string | null;
  reusable: boolean;
  ephemeral: boolean;
  preauthorized: boolean;
  tags: string[];
  description: string;
  created: string;
  expires: string | null;
  revoked: string | null;
  uses: number;
}

export interface Device {
  id: string;
  tailnetId: number;
  userId: string;
  machineKey: string;
  nodeKey: string;
  hostname: string;
  name: string;
  ipv4: string;
  ipv6: string;
  tags: string[];
  os: string;
  clientVersion: string;
  endpoints: string[];
  advertisedRoutes: string[];
  enabledRoutes: string[];
  posture: Record<string, unknown>;
  authorized: boolean;
  ephemeral: boolean;
  keyExpiryDisabled: boolean;
  created: string;
  lastSeen: string | null;
  expires: string | null;
  authKeyId: string | null;
}

export interface AuditEntry {
  id: number;
  tailnetId: number;
  eventTime: string;
  type: string;
  origin: string;
  actor: Record<string, unknown>;
  target: Record<string, unknown>;
  action: string;
  old: unknown;
  new: unknown;
}

/** An invitation to share a device with a user of another network (issue 7). */
export interface DeviceInvite {
  id: string;
  tailnetId: number;
  deviceId: string;
  sharerId: string;
  label: string;
  codeHash: Buffer;
  created: string;
  acceptedBy: string | null;
  acceptedAt: string | null;
}

/** A device of one network shared with a user of another. */
export interface Share {
  id: string;
  tailnetId: number;
  deviceId: string;
  sharerId: string;
  recipientId: string;
  recipientTailnetId: number;
  created: string;
}

export type AuditInput = Omit<AuditEntry, 'id' | 'eventTime' | 'tailnetId'>;

export class NotFound extends Error {}
export class Conflict extends Error {}

const now = () => new Date().toISOString();
const json = (v: unknown) => JSON.stringify(v);
const bool = (v: unknown) => v === 1 || v === true;

/** A DNS label from a hostname: lowercase letters, digits and dashes, at most 63 characters. */
export function dnsLabel(hostname: string): string {
  const label = hostname
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return label || 'device';
}

type Row = Record<string, any>;

function tailnetFrom(r: Row): Tailnet {
  return {
    id: r.id, name: r.name, domain: r.domain, created: r.created, policy: r.policy, policyEtag: r.policy_etag,
    settings: JSON.parse(r.settings), dns: JSON.parse(r.dns),
  };
}
function userFrom(r: Row): User {
  return {
    id: r.id, tailnetId: r.tailnet_id, email: r.email, displayName: r.display_name, role: r.role, status: r.status,
    passwordHash: r.password_hash ?? null, created: r.created, lastSeen: r.last_seen ?? null,
  };
}
function keyFrom(r: Row): Key {
  return {
    id: r.id, tailnetId: r.tailnet_id, keyType: r.key_type, hash: r.hash, userId: r.user_id,
    deviceUserId: r.device_user_id ?? null, reusable: bool(r.reusable), ephemeral: bool(r.ephemeral),
    preauthorized: bool(r.preauthorized), tags: JSON.parse(r.tags), description: r.description, created: r.created,
    expires: r.expires ?? null, revoked: r.revoked ?? null, uses: r.uses,
  };
}
function deviceFrom(r: Row): Device {
  return {
    id: r.id, tailnetId: r.tailnet_id, userId: r.user_id, machineKey: r.machine_key, nodeKey: r.node_key,
    hostname: r.hostname, name: r.name, ipv4: r.ipv4, ipv6: r.ipv6, tags: JSON.parse(r.tags), os: r.os,
    clientVersion: r.client_version, endpoints: JSON.parse(r.endpoints), advertisedRoutes: JSON.parse(r.advertised_routes),
    enabledRoutes: JSON.parse(r.enabled_routes), posture: JSON.parse(r.posture), authorized: bool(r.authorized),
    ephemeral: bool(r.ephemeral), keyExpiryDisabled: bool(r.key_expiry_disabled), created: r.created,
    lastSeen: r.last_seen ?? null, expires: r.expires ?? null, authKeyId: r.auth_key_id ?? null,
  };
}
function auditFrom(r: Row): AuditEntry {
  return {
    id: r.id, tailnetId: r.tailnet_id, eventTime: r.event_time, type: r.type, origin: r.origin,
    actor: JSON.parse(r.actor), target: JSON.parse(r.target), action: r.action,
    old: r.old == null ? undefined : JSON.parse(r.old), new: r.new == null ? undefined : JSON.parse(r.new),
  };
}

function inviteFrom(r: Row): DeviceInvite {
  return {
    id: r.id, tailnetId: r.tailnet_id, deviceId: r.device_id, sharerId: r.sharer_id, label: r.label, codeHash: r.code_hash,
    created: r.created, acceptedBy: r.accepted_by ?? null, acceptedAt: r.accepted_at ?? null,
  };
}
function shareFrom(r: Row): Share {
  return {
    id: r.id, tailnetId: r.tailnet_id, deviceId: r.device_id, sharerId: r.sharer_id, recipientId: r.recipient_id,
    recipientTailnetId: r.recipient_tailnet_id, created: r.created,
  };
}

const DEVICE_COLUMNS: Record<string, string> = {
  userId: 'user_id', nodeKey: 'node_key', hostname: 'hostname', name: 'name', tags: 'tags', os: 'os',
  clientVersion: 'client_version', endpoints: 'endpoints', advertisedRoutes: 'advertised_routes',
  enabledRoutes: 'enabled_routes', posture: 'posture', authorized: 'authorized', ephemeral: 'ephemeral',
  keyExpiryDisabled: 'key_expiry_disabled', lastSeen: 'last_seen', expires: 'expires', authKeyId: 'auth_key_id',
};

export class Store {
  readonly db: Database.Database;
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
  stmt(sql: string): Database.Statement {
    let st = this.stmts.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.stmts.set(sql, st);
    }
    return st;
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

  // ── networks ────────────────────────────────────────────────────────────────

  createTailnet(name: string, ownerEmail: string, policy: string, policyEtag: string): { tailnet: Tailnet; owner: User; apiKey: NewSecret; apiKeyExpires: string } {
    return this.tx(() => {
      if (this.stmt('SELECT 1 FROM tailnets WHERE name = ?').get(name)) throw new Conflict(`network "${name}" already exists`);
      const base = dnsLabel(name.replace(/@/g, '-').replace(/\./g, '-'));
      let domain = `${base}.meshward.internal`;
      for (let i = 2; this.stmt('SELECT 1 FROM tailnets WHERE domain = ?').get(domain); i++) {
        domain = `${base}-${i}.meshward.internal`;
      }
      const created = now();
      const info = this.db
        .prepare('INSERT INTO tailnets (name, domain, created, policy, policy_etag, settings, dns) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(name, domain, created, policy, policyEtag, json({}), json({ nameservers: [], searchPaths: [], magicDNS: true }));
      const tailnetId = Number(info.lastInsertRowid);
      const owner = this.createUser(tailnetId, ownerEmail, 'owner');
      const apiKey = this.createKey({ tailnetId, keyType: 'api', userId: owner.id, description: 'first owner key', expires: new Date(Date.now() + API_KEY_MAX_SECONDS * 1000).toISOString() });
      return { tailnet: this.getTailnet(tailnetId)!, owner, apiKey: apiKey.secret, apiKeyExpires: apiKey.key.expires! };
    });
  }

  getTailnet(id: number): Tailnet | undefined {
    const r = this.stmt('SELECT * FROM tailnets WHERE id = ?').get(id) as Row | undefined;
    return r && tailnetFrom(r);
  }

  getTailnetByName(name: string): Tailnet | undefined {
    const r = this.stmt('SELECT * FROM tailnets WHERE name = ?').get(name) as Row | undefined;
    return r && tailnetFrom(r);
  }

  listTailnets(): Tailnet[] {
    return (this.stmt('SELECT * FROM tailnets ORDER BY id').all() as Row[]).map(tailnetFrom);
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
    this.db
      .prepare('INSERT INTO users (id, tailnet_id, email, display_name, role, status, created) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(id, tailnetId, email, displayName ?? email.split('@')[0]!, role, 'active', now());
    return this.getUser(id)!;
  }

  getUser(id: string): User | undefined {
    const r = this.stmt('SELECT * FROM users WHERE id = ?').get(id) as Row | undefined;
    return r && userFrom(r);
  }

  getUserByEmail(tailnetId: number, email: string): User | undefined {
    const r = this.stmt('SELECT * FROM users WHERE tailnet_id = ? AND email = ? COLLATE NOCASE').get(tailnetId, email) as Row | undefined;
    return r && userFrom(r);
  }

  listUsers(tailnetId: number): User[] {
    return (this.stmt('SELECT * FROM users WHERE tailnet_id = ? ORDER BY created, id').all(tailnetId) as Row[]).map(userFrom);
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
    ephemeral?: boolean; preauthorized?: boolean; tags?: string[]; description?: string; expires?: string | null;
  }): { key: Key; secret: NewSecret } {
    const secret = newSecret(k.keyType === 'session' ? 'session' : k.keyType === 'auth' ? 'auth' : 'api');
    this.db
      .prepare(
        `INSERT INTO keys (id, tailnet_id, key_type, hash, user_id, device_user_id, reusable, ephemeral, preauthorized,
           tags, description, created, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        secret.id, k.tailnetId, k.keyType, secret.hash, k.userId, k.deviceUserId ?? null, k.reusable ? 1 : 0,
        k.ephemeral ? 1 : 0, k.preauthorized ? 1 : 0, json(k.tags ?? []), k.description ?? '', now(), k.expires ?? null,
      );
    return { key: this.getKey(secret.id)!, secret };
  }

  getKey(id: string): Key | undefined {
    const r = this.stmt('SELECT * FROM keys WHERE id = ?').get(id) as Row | undefined;
    return r && keyFrom(r);
  }

  /** Keys of a network that are not sessions; api keys only the caller's own (as Tailscale lists them). */
  listKeys(tailnetId: number, callerId: string): Key[] {
    return (
      this.db
        .prepare(
          `SELECT * FROM keys WHERE tailnet_id = ? AND revoked IS NULL AND
             (key_type = 'auth' OR (key_type = 'api' AND user_id = ?)) ORDER BY created, id`,
        )
        .all(tailnetId, callerId) as Row[]
    ).map(keyFrom);
  }

  revokeKey(id: string): void {
    this.stmt('UPDATE keys SET revoked = ? WHERE id = ? AND revoked IS NULL').run(now(), id);
  }

  countKeyUse(id: string): void {
    this.stmt('UPDATE keys SET uses = uses + 1 WHERE id = ?').run(id);
  }

  // ── devices ─────────────────────────────────────────────────────────────────

  /** Inserts a device, allocating addresses unique across all networks and a DNS label unique in its own. */
  createDevice(d: Omit<Device, 'id' | 'name' | 'ipv4' | 'ipv6' | 'created' | 'lastSeen'>): Device {
    return this.tx(() => {
      const id = 'n' + randomToken(14);
      this.claimNodeKey(d.nodeKey, '');
      const name = this.freeName(d.tailnetId, dnsLabel(d.hostname));
      const taken = this.stmt('SELECT 1 FROM devices WHERE ipv4 = ?');
      let ipv4 = randomIp4();
      while (taken.get(ipv4)) ipv4 = randomIp4();
      this.db
        .prepare(
          `INSERT INTO devices (id, tailnet_id, user_id, machine_key, node_key, hostname, name, ipv4, ipv6, tags, os,
             client_version, endpoints, advertised_routes, enabled_routes, posture, authorized, ephemeral,
             key_expiry_disabled, created, last_seen, expires, auth_key_id)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          id, d.tailnetId, d.userId, d.machineKey, d.nodeKey, d.hostname, name, ipv4, ip6For(ipv4), json(d.tags), d.os,
          d.clientVersion, json(d.endpoints), json(d.advertisedRoutes), json(d.enabledRoutes), json(d.posture),
          d.authorized ? 1 : 0, d.ephemeral ? 1 : 0, d.keyExpiryDisabled ? 1 : 0, now(), now(), d.expires, d.authKeyId,
        );
      return this.getDevice(id)!;
    });
  }

  /** `label`, or `label-1`, `label-2`, … the first not used by another device of the network. */
  freeName(tailnetId: number, label: string, exceptDeviceId = ''): string {
    const used = this.stmt('SELECT 1 FROM devices WHERE tailnet_id = ? AND name = ? AND id != ?');
    let name = label;
    for (let i = 1; used.get(tailnetId, name, exceptDeviceId); i++) name = `${label.slice(0, 58)}-${i}`;
    return name;
  }

  getDevice(id: string): Device | undefined {
    const r = this.stmt('SELECT * FROM devices WHERE id = ?').get(id) as Row | undefined;
    return r && deviceFrom(r);
  }

  getDeviceByMachineKey(machineKey: string): Device | undefined {
    const r = this.stmt('SELECT * FROM devices WHERE machine_key = ?').get(machineKey) as Row | undefined;
    return r && deviceFrom(r);
  }

  listDevices(tailnetId: number): Device[] {
    return (this.stmt('SELECT * FROM devices WHERE tailnet_id = ? ORDER BY created, id').all(tailnetId) as Row[]).map(deviceFrom);
  }

  updateDevice(id: string, patch: Partial<Omit<Device, 'id' | 'tailnetId' | 'machineKey' | 'ipv4' | 'ipv6' | 'created'>>): Device {
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

  createDeviceInvite(tailnetId: number, deviceId: string, sharerId: string, label: string): { invite: DeviceInvite; code: string } {
    const code = newSecret('invite', 'd');
    this.stmt('INSERT INTO device_invites (id, tailnet_id, device_id, sharer_id, label, code_hash, created) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(code.id, tailnetId, deviceId, sharerId, label, code.hash, now());
    return { invite: this.getDeviceInvite(code.id)!, code: code.secret };
  }

  getDeviceInvite(id: string): DeviceInvite | undefined {
    const r = this.stmt('SELECT * FROM device_invites WHERE id = ?').get(id) as Row | undefined;
    return r && inviteFrom(r);
  }

  listDeviceInvites(deviceId: string): DeviceInvite[] {
    return (this.stmt('SELECT * FROM device_invites WHERE device_id = ? ORDER BY created, id').all(deviceId) as Row[]).map(inviteFrom);
  }

  /** Marks the invite accepted and records the share; undefined when it was accepted already. */
  acceptDeviceInvite(inv: DeviceInvite, recipient: User): Share | undefined {
    const at = now();
    const info = this.stmt('UPDATE device_invites SET accepted_by = ?, accepted_at = ? WHERE id = ? AND accepted_by IS NULL').run(recipient.id, at, inv.id);
    if (info.changes !== 1) return undefined;
    this.stmt(
      `INSERT INTO shares (id, tailnet_id, device_id, sharer_id, recipient_id, recipient_tailnet_id, created) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (device_id, recipient_id) DO NOTHING`,
    ).run(inv.id, inv.tailnetId, inv.deviceId, inv.sharerId, recipient.id, recipient.tailnetId, at);
    // Already shared with this user by an earlier invite: the share stays as it is.
    return this.shareFor(inv.deviceId, recipient.id)!;
  }

  /** The share of a device with a user, if any. */
  shareFor(deviceId: string, recipientId: string): Share | undefined {
    const r = this.stmt('SELECT * FROM shares WHERE device_id = ? AND recipient_id = ?').get(deviceId, recipientId) as Row | undefined;
    return r && shareFrom(r);
  }

  deleteDeviceInvite(id: string): void {
    this.stmt('DELETE FROM device_invites WHERE id = ?').run(id);
  }

  getShare(id: string): Share | undefined {
    const r = this.stmt('SELECT * FROM shares WHERE id = ?').get(id) as Row | undefined;
    return r && shareFrom(r);
  }

  deleteShare(id: string): void {
    this.stmt('DELETE FROM shares WHERE id = ?').run(id);
  }

  /** Shares of this network's devices (sharer side). */
  sharesFrom(tailnetId: number): Share[] {
    return (this.stmt('SELECT * FROM shares WHERE tailnet_id = ? ORDER BY created, id').all(tailnetId) as Row[]).map(shareFrom);
  }

  /** Shares of other networks' devices with this network's users (recipient side). */
  sharesInto(tailnetId: number): Share[] {
    return (this.stmt('SELECT * FROM shares WHERE recipient_tailnet_id = ? ORDER BY created, id').all(tailnetId) as Row[]).map(shareFrom);
  }

  // ── audit log ───────────────────────────────────────────────────────────────

  addAudit(tailnetId: number, e: AuditInput): AuditEntry {
    const eventTime = now();
    const info = this.db
      .prepare('INSERT INTO audit (tailnet_id, event_time, type, origin, actor, target, action, old, new) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(tailnetId, eventTime, e.type, e.origin, json(e.actor), json(e.target), e.action,
        e.old === undefined ? null : json(e.old), e.new === undefined ? null : json(e.new));
    return { ...e, id: Number(info.lastInsertRowid), tailnetId, eventTime };
  }

  listAudit(tailnetId: number, start: string, end: string): AuditEntry[] {
    return (
      this.db
        .prepare('SELECT * FROM audit WHERE tailnet_id = ? AND event_time >= ? AND event_time <= ? ORDER BY id')
        .all(tailnetId, start, end) as Row[]
    ).map(auditFrom);
  }
}
