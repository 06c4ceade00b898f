// The cross-platform userspace configuration protocol (https://www.wireguard.com/xplatform/):
// `wg` connects to /var/run/wireguard/IFACE.sock and sends "get=1\n\n" or "set=1\n" + key=value
// lines + "\n"; every answer ends with "errno=N\n\n" (0, or a negated errno like wireguard-go's).
import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { ctEqual, isZero } from './crypto.js';
import type { Device, Peer } from './device.js';

export const SOCKET_DIR = '/var/run/wireguard';

const EIO = -5;
const EINVAL = -22;
const EPROTO = -71;
const EADDRINUSE = -98;

class UapiError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

function hexKey(value: string, what: string): Buffer {
  if (!/^[0-9a-fA-F]{64}$/.test(value)) throw new UapiError(EINVAL, `invalid ${what}: want 64 hex digits`);
  return Buffer.from(value, 'hex');
}

function uint(value: string, max: number, what: string): number {
  if (!/^\d{1,10}$/.test(value) || Number(value) > max) throw new UapiError(EINVAL, `invalid ${what} ${JSON.stringify(value)}`);
  return Number(value);
}

function mustBeTrue(key: string, value: string): void {
  if (value !== 'true') throw new UapiError(EINVAL, `invalid value for ${key}: ${JSON.stringify(value)}`);
}

/** The body of a "get" answer (without the errno line). */
export function uapiGet(dev: Device): string {
  const out: string[] = [];
  if (dev.staticKey) out.push(`private_key=${dev.staticKey.raw.toString('hex')}`);
  if (dev.port !== 0) out.push(`listen_port=${dev.port}`);
  if (dev.fwmark !== 0) out.push(`fwmark=${dev.fwmark}`);
  for (const peer of dev.listPeers()) {
    const st = dev.peerStatus(peer);
    out.push(`public_key=${st.publicKey}`);
    out.push(`preshared_key=${peer.handshake.presharedKey.toString('hex')}`);
    out.push('protocol_version=1');
    if (st.endpoint) out.push(`endpoint=${st.endpoint}`);
    out.push(`last_handshake_time_sec=${Math.floor(st.lastHandshake / 1000)}`);
    out.push(`last_handshake_time_nsec=${Math.round((st.lastHandshake % 1000) * 1e6)}`);
    out.push(`tx_bytes=${st.txBytes}`);
    out.push(`rx_bytes=${st.rxBytes}`);
    out.push(`persistent_keepalive_interval=${st.persistentKeepalive}`);
    for (const ip of st.allowedIPs) out.push(`allowed_ip=${ip}`);
  }
  return out.map((l) => l + '\n').join('');
}

/**
 * Applies a "set" operation's lines in order (as wireguard-go does: lines before an error stay
 * applied). Returns 0 or a negated errno, and the error message.
 */
export function uapiSet(dev: Device, lines: string[]): { errno: number; error?: string } {
  let peer: Peer | null = null;
  let dummy = false; // the current peer is ignored (our own key, removed, or update_only on a new one)
  let created = false;
  const pub = () => peer!.publicKey.raw;
  try {
    for (const line of lines) {
      const eq = line.indexOf('=');
      if (eq < 0) throw new UapiError(EPROTO, `line without "=": ${JSON.stringify(line)}`);
      const key = line.slice(0, eq);
      const value = line.slice(eq + 1);
      if (key === 'public_key') {
        const raw = hexKey(value, 'public key');
        const own = dev.publicKey;
        dummy = own !== null && ctEqual(own.raw, raw);
        created = false;
        peer = null;
        if (!dummy) {
          created = !dev.hasPeer(raw);
          peer = dev.setPeer(raw, {});
        }
        continue;
      }
      if (peer === null && !dummy) {
        switch (key) {
          case 'private_key':
            dev.setPrivateKey(hexKey(value, 'private key'));
            break;
          case 'listen_port': {
            const port = uint(value, 65535, 'listen_port');
            try {
              dev.setListenPort(port);
            } catch (err) {
              throw new UapiError(EADDRINUSE, `cannot listen on port ${port}: ${(err as Error).message}`);
            }
            break;
          }
          case 'fwmark':
            dev.fwmark = uint(value, 0xffffffff, 'fwmark');
            break;
          case 'replace_peers':
            mustBeTrue(key, value);
            dev.removeAllPeers();
            break;
          default:
            throw new UapiError(EINVAL, `invalid UAPI device key: ${key}`);
        }
        continue;
      }
      switch (key) {
        case 'update_only':
          mustBeTrue(key, value);
          if (created && peer) {
            dev.removePeer(pub());
            peer = null;
            dummy = true;
          }
          break;
        case 'remove':
          mustBeTrue(key, value);
          if (peer) dev.removePeer(pub());
          peer = null;
          dummy = true;
          break;
        case 'preshared_key': {
          const psk = hexKey(value, 'preshared key');
          if (peer) dev.setPeer(pub(), { presharedKey: isZero(psk) ? null : psk });
          break;
        }
        case 'endpoint':
          try {
            if (peer) dev.setPeer(pub(), { endpoint: value });
          } catch (err) {
            throw new UapiError(EINVAL, (err as Error).message);
          }
          break;
        case 'persistent_keepalive_interval': {
          const secs = uint(value, 65535, 'persistent_keepalive_interval');
          if (peer) dev.setPeer(pub(), { persistentKeepalive: secs });
          break;
        }
        case 'replace_allowed_ips':
          mustBeTrue(key, value);
          if (peer) dev.setPeer(pub(), { replaceAllowedIPs: true });
          break;
        case 'allowed_ip': {
          const removing = value.startsWith('-');
          const prefix = removing ? value.slice(1) : value;
          if (!prefix.includes('/')) throw new UapiError(EINVAL, `invalid allowed_ip ${JSON.stringify(value)}`);
          try {
            if (peer) dev.setPeer(pub(), removing ? { removeAllowedIPs: [prefix] } : { allowedIPs: [prefix] });
          } catch (err) {
            throw new UapiError(EINVAL, (err as Error).message);
          }
          break;
        }
        case 'protocol_version':
          if (value !== '1') throw new UapiError(EINVAL, `invalid protocol version ${JSON.stringify(value)}`);
          break;
        default:
          throw new UapiError(EINVAL, `invalid UAPI peer key: ${key}`);
      }
    }
    return { errno: 0 };
  } catch (err) {
    if (err instanceof UapiError) return { errno: err.errno, error: err.message };
    return { errno: EIO, error: (err as Error).message };
  }
}

/** Serves one connection: any number of get/set operations until the client closes. */
function serveConnection(dev: Device, sock: Socket, log: (m: string) => void): void {
  let buffered = '';
  let op: 'get' | 'set' | null = null;
  let setLines: string[] = [];
  sock.setEncoding('utf8');
  sock.on('error', () => sock.destroy());
  sock.on('data', (chunk: string) => {
    buffered += chunk;
    if (buffered.length > 1 << 20) {
      sock.destroy(); // nobody configures a megabyte at once
      return;
    }
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (op === null) {
        if (line === 'get=1') op = 'get';
        else if (line === 'set=1') {
          op = 'set';
          setLines = [];
        } else {
          log(`uapi: invalid operation ${JSON.stringify(line.slice(0, 40))}`);
          sock.destroy();
          return;
        }
        continue;
      }
      if (op === 'get') {
        op = null;
        if (line !== '') {
          sock.write(`errno=${EINVAL}\n\n`);
          continue;
        }
        sock.write(`${uapiGet(dev)}errno=0\n\n`);
        continue;
      }
      if (line !== '') {
        setLines.push(line);
        continue;
      }
      op = null;
      const res = uapiSet(dev, setLines);
      if (res.errno !== 0) log(`uapi: set failed: ${res.error}`);
      sock.write(`errno=${res.errno}\n\n`);
    }
  });
}

export function socketPath(iface: string): string {
  return join(SOCKET_DIR, `${iface}.sock`);
}

/** True if something answers on the socket (another process owns the interface). */
function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export class UapiServer {
  private constructor(
    private readonly server: Server,
    readonly path: string,
    private readonly conns: Set<Socket>,
  ) {}

  /** Listens on `path` (default /var/run/wireguard/IFACE.sock): dir 0755, socket 0600. */
  static async listen(dev: Device, path: string, log: (m: string) => void = () => {}): Promise<UapiServer> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    if (await socketAlive(path)) throw new Error(`${path} is in use by another process`);
    try {
      unlinkSync(path);
    } catch {
      // no stale socket
    }
    const conns = new Set<Socket>();
    const server = createServer((sock) => {
      conns.add(sock);
      sock.once('close', () => conns.delete(sock));
      serveConnection(dev, sock, log);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(path, 0o600);
    return new UapiServer(server, path, conns);
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.conns) c.destroy();
    await closed;
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}
