// Versioned schema migrations. The database's `user_version` is the number of migrations applied;
// a new schema change is a new entry at the end of this list, never an edit of an old one.
export const MIGRATIONS: readonly string[] = [
  // 1: networks, users, keys, devices, audit log.
  `
  CREATE TABLE tailnets (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    domain       TEXT NOT NULL UNIQUE,
    created      TEXT NOT NULL,
    policy       TEXT NOT NULL,
    policy_etag  TEXT NOT NULL,
    settings     TEXT NOT NULL DEFAULT '{}',
    dns          TEXT NOT NULL DEFAULT '{}'
  );
  CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    tailnet_id    INTEGER NOT NULL REFERENCES tailnets(id) ON DELETE CASCADE,
    email         TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'active',
    password_hash TEXT,
    created       TEXT NOT NULL,
    last_seen     TEXT,
    UNIQUE (tailnet_id, email)
  );
  CREATE TABLE keys (
    id            TEXT PRIMARY KEY,
    tailnet_id    INTEGER NOT NULL REFERENCES tailnets(id) ON DELETE CASCADE,
    key_type      TEXT NOT NULL,            -- 'auth' | 'api' | 'session'
    hash          BLOB NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE, -- creator (api/session: the caller)
    device_user_id TEXT REFERENCES users(id) ON DELETE CASCADE,          -- auth keys: who owns the devices
    reusable      INTEGER NOT NULL DEFAULT 0,
    ephemeral     INTEGER NOT NULL DEFAULT 0,
    preauthorized INTEGER NOT NULL DEFAULT 0,
    tags          TEXT NOT NULL DEFAULT '[]',
    description   TEXT NOT NULL DEFAULT '',
    created       TEXT NOT NULL,
    expires       TEXT,
    revoked       TEXT,
    uses          INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX keys_tailnet ON keys (tailnet_id);
  CREATE TABLE devices (
    id              TEXT PRIMARY KEY,
    tailnet_id      INTEGER NOT NULL REFERENCES tailnets(id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users(id),
    machine_key     TEXT NOT NULL UNIQUE,
    node_key        TEXT NOT NULL,
    hostname        TEXT NOT NULL,
    name            TEXT NOT NULL,          -- DNS label, unique in the network
    ipv4            TEXT NOT NULL UNIQUE,   -- unique across all networks
    ipv6            TEXT NOT NULL UNIQUE,
    tags            TEXT NOT NULL DEFAULT '[]',
    os              TEXT NOT NULL DEFAULT '',
    client_version  TEXT NOT NULL DEFAULT '',
    endpoints       TEXT NOT NULL DEFAULT '[]',
    advertised_routes TEXT NOT NULL DEFAULT '[]',
    enabled_routes  TEXT NOT NULL DEFAULT '[]',
    posture         TEXT NOT NULL DEFAULT '{}',
    authorized      INTEGER NOT NULL DEFAULT 1,
    ephemeral       INTEGER NOT NULL DEFAULT 0,
    key_expiry_disabled INTEGER NOT NULL DEFAULT 0,
    created         TEXT NOT NULL,
    last_seen       TEXT,
    expires         TEXT,
    auth_key_id     TEXT,
    UNIQUE (tailnet_id, name)
  );
  CREATE INDEX devices_tailnet ON devices (tailnet_id);
  CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    tailnet_id  INTEGER NOT NULL REFERENCES tailnets(id) ON DELETE CASCADE,
    event_time  TEXT NOT NULL,
    type        TEXT NOT NULL,
    origin      TEXT NOT NULL,
    actor       TEXT NOT NULL,   -- JSON {id, type, loginName, displayName}
    target      TEXT NOT NULL,   -- JSON {id, name, type, property?}
    action      TEXT NOT NULL,
    old         TEXT,            -- JSON
    new         TEXT             -- JSON
  );
  CREATE INDEX audit_tailnet_time ON audit (tailnet_id, event_time);
  CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    tailnet_id  INTEGER NOT NULL REFERENCES tailnets(id) ON DELETE CASCADE,
    endpoint_url TEXT NOT NULL,
    provider_type TEXT NOT NULL DEFAULT '',
    subscriptions TEXT NOT NULL DEFAULT '[]',
    secret      TEXT NOT NULL,
    creator_login_name TEXT NOT NULL,
    created     TEXT NOT NULL,
    last_modified TEXT NOT NULL
  );
  CREATE TABLE user_invites (
    id          TEXT PRIMARY KEY,
    tailnet_id  INTEGER NOT NULL REFERENCES tailnets(id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    role        TEXT NOT NULL,
    code_hash   BLOB NOT NULL,
    inviter_id  TEXT NOT NULL,
    created     TEXT NOT NULL,
    accepted    TEXT
  );
  `,
  // 2: device sharing: invites (one-time codes, stored hashed) and the shares they made.
  `
  CREATE TABLE device_invites (
    id          TEXT PRIMARY KEY,
    tailnet_id  INTEGER NOT NULL REFERENCES tailnets(id) ON DELETE CASCADE,
    device_id   TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    sharer_id   TEXT NOT NULL,          -- the user who created the invite (shown as the owner in the recipient network)
    label       TEXT NOT NULL DEFAULT '',
    code_hash   BLOB NOT NULL,
    created     TEXT NOT NULL,
    accepted_by TEXT,                   -- user id, in another network
    accepted_at TEXT
  );
  CREATE INDEX device_invites_device ON device_invites (device_id);
  CREATE TABLE shares (
    id                   TEXT PRIMARY KEY,  -- the invite it came from
    tailnet_id           INTEGER NOT NULL REFERENCES tailnets(id) ON DELETE CASCADE,
    device_id            TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    sharer_id            TEXT NOT NULL,
    recipient_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    recipient_tailnet_id INTEGER NOT NULL REFERENCES tailnets(id) ON DELETE CASCADE,
    created              TEXT NOT NULL,
    UNIQUE (device_id, recipient_id)
  );
  CREATE INDEX shares_recipient_tailnet ON shares (recipient_tailnet_id);
  `,
  // 3: nonces of signed machine requests, so a captured request cannot be replayed after a restart.
  `
  CREATE TABLE machine_nonces (
    key      TEXT PRIMARY KEY,  -- "<machine key>/<nonce>"
    expires  INTEGER NOT NULL   -- unix ms; after this the timestamp check alone refuses the request
  ) WITHOUT ROWID;
  CREATE INDEX machine_nonces_expires ON machine_nonces (expires);
  `,
  // 4: numeric ids for users and devices, which Tailscale's API answers where it has numbers (an invite's
  // deviceId, sharerId, inviterId). Never reused: a counter per table, assigned by a trigger on insert.
  `
  CREATE TABLE id_counters (
    kind  TEXT PRIMARY KEY,
    last  INTEGER NOT NULL
  );
  ALTER TABLE users ADD COLUMN num INTEGER;
  UPDATE users SET num = rowid;
  CREATE UNIQUE INDEX users_num ON users (num);
  INSERT INTO id_counters SELECT 'users', COALESCE(MAX(num), 0) FROM users;
  CREATE TRIGGER users_num_on_insert AFTER INSERT ON users WHEN NEW.num IS NULL BEGIN
    UPDATE id_counters SET last = last + 1 WHERE kind = 'users';
    UPDATE users SET num = (SELECT last FROM id_counters WHERE kind = 'users') WHERE rowid = NEW.rowid;
  END;
  ALTER TABLE devices ADD COLUMN num INTEGER;
  UPDATE devices SET num = rowid;
  CREATE UNIQUE INDEX devices_num ON devices (num);
  INSERT INTO id_counters SELECT 'devices', COALESCE(MAX(num), 0) FROM devices;
  CREATE TRIGGER devices_num_on_insert AFTER INSERT ON devices WHEN NEW.num IS NULL BEGIN
    UPDATE id_counters SET last = last + 1 WHERE kind = 'devices';
    UPDATE devices SET num = (SELECT last FROM id_counters WHERE kind = 'devices') WHERE rowid = NEW.rowid;
  END;
  `,
  // 5: connectivity: the device's disco public key (path probes) and the relay it prefers (its home).
  `
  ALTER TABLE devices ADD COLUMN disco_key TEXT NOT NULL DEFAULT '';
  ALTER TABLE devices ADD COLUMN home_relay TEXT NOT NULL DEFAULT '';
  CREATE INDEX devices_node_key ON devices (node_key);
  `,
  // 6: log streaming: where each tailnet's configuration log goes, how far it got (the id of the last
  // audit entry delivered or dropped: what is newer is the backlog), and what was sent. The token is a
  // secret coord must send, so it is kept as webhook secrets are (this file is 0600), and never answered.
  `
  CREATE TABLE log_streams (
    tailnet_id        INTEGER NOT NULL REFERENCES tailnets(id) ON DELETE CASCADE,
    log_type          TEXT NOT NULL,
    destination_type  TEXT NOT NULL,
    url               TEXT NOT NULL,
    user              TEXT NOT NULL DEFAULT '',
    token             TEXT NOT NULL DEFAULT '',
    compression       TEXT NOT NULL DEFAULT 'none',
    cursor            INTEGER NOT NULL,
    created           TEXT NOT NULL,
    last_modified     TEXT NOT NULL,
    entries_sent      INTEGER NOT NULL DEFAULT 0,
    bytes_sent        INTEGER NOT NULL DEFAULT 0,
    requests          INTEGER NOT NULL DEFAULT 0,
    failed_requests   INTEGER NOT NULL DEFAULT 0,
    dropped_entries   INTEGER NOT NULL DEFAULT 0,
    last_activity     TEXT,
    last_error        TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tailnet_id, log_type)
  );
  CREATE INDEX audit_tailnet_id ON audit (tailnet_id, id);
  `,
  // 7: invites by e-mail: a device invite's recipient address, and when each invite was last mailed.
  `
  ALTER TABLE device_invites ADD COLUMN email TEXT NOT NULL DEFAULT '';
  ALTER TABLE device_invites ADD COLUMN last_email_sent_at TEXT;
  ALTER TABLE user_invites ADD COLUMN last_email_sent_at TEXT;
  `,
  // 8: the relay map's extra relays (`coord relays add`; coord's own relay comes from `coord serve`'s
  // flags). Each standalone relay proves itself to coord with a secret stored only as a hash.
  `
  CREATE TABLE relays (
    name         TEXT PRIMARY KEY,
    url          TEXT NOT NULL,
    stun_port    INTEGER NOT NULL DEFAULT 0,
    secret_id    TEXT NOT NULL UNIQUE,
    secret_hash  BLOB NOT NULL,
    created      TEXT NOT NULL
  );
  `,
  // 9: every key expires (Tailscale's keys all do, and its API always answers with a date-time). Keys made
  // before keys had to expire get 90 days from this upgrade rather than expiring at once.
  `
  UPDATE keys SET expires = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+90 days') WHERE expires IS NULL;
  `,
  // 10: multi-use device invites. One invite may now make many shares, so a share gets an id of its own
  // and names the invite it came from (shares made before keep their id, which was that invite's id).
  // A multi-use invite records each user who accepted it: one acceptance per user, kept after a revoke
  // so that a revoked recipient cannot take the share back with the same link.
  `
  ALTER TABLE device_invites ADD COLUMN multi_use INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE shares ADD COLUMN invite_id TEXT;
  UPDATE shares SET invite_id = id WHERE id IN (SELECT id FROM device_invites);
  CREATE INDEX shares_invite ON shares (invite_id);
  CREATE TABLE device_invite_acceptances (
    invite_id    TEXT NOT NULL REFERENCES device_invites(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL,
    accepted_at  TEXT NOT NULL,
    PRIMARY KEY (invite_id, user_id)
  );
  `,
];
