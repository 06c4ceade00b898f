// A simulated device for tests: the real control client (agent/control) against the real server.
import { randomBytes } from 'node:crypto';
import { ControlClient, generateMachineKey, type Netmap, type NetmapStream, type StreamOptions } from '../../agent/control/index.js';

export class TestDevice {
  readonly client: ControlClient;
  readonly nodeKey: string;
  netmaps: Netmap[] = [];
  errors: { err: Error; fatal: boolean }[] = [];
  /** When (Date.now()) each netmap stream opened. */
  connectedAt: number[] = [];
  stream: NetmapStream | undefined;
  id = '';

  /** `nodeKey`: the WireGuard public key to register (default: random bytes). */
  constructor(url: string, nodeKey = randomBytes(32).toString('base64')) {
    this.client = new ControlClient(url, generateMachineKey());
    this.nodeKey = nodeKey;
  }

  async register(authKey: string | undefined, hostname: string, tags?: string[], extra: { discoKey?: string; homeRelay?: string } = {}) {
    const r = await this.client.register({ nodeKey: this.nodeKey, hostname, authKey, tags, os: 'linux', version: '0.1.0', endpoints: ['192.0.2.1:41641'], ...extra });
    this.id = r.deviceId;
    return r;
  }

  /** Opens the netmap stream; tests reconnect quickly unless they pass the schedule to use. */
  connect(opts: StreamOptions = { baseMs: 50, maxMs: 500 }): void {
    this.stream = this.client.stream(
      {
        onNetmap: (n) => this.netmaps.push(n),
        onError: (err, { fatal }) => this.errors.push({ err, fatal }),
        onConnected: () => this.connectedAt.push(Date.now()),
      },
      opts,
    );
  }

  get last(): Netmap | undefined {
    return this.netmaps[this.netmaps.length - 1];
  }

  peerNames(): string[] {
    return (this.last?.peers ?? []).map((p) => p.name.split('.')[0]!).sort();
  }

  /** Waits until the latest netmap satisfies `pred`. */
  async waitFor(pred: (n: Netmap) => boolean, timeoutMs = 3000): Promise<Netmap> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const n = this.last;
      if (n && pred(n)) return n;
      if (Date.now() > until) throw new Error(`timed out; last netmap: ${JSON.stringify(n)?.slice(0, 600)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** The netmaps received since `from` (a value of `netmaps.length` taken earlier). */
  since(from: number): Netmap[] {
    return this.netmaps.slice(from);
  }

  close(): void {
    this.stream?.close();
  }
}

let markers = 0;

/**
 * Proves a negative without a fixed sleep: makes a later change that reaches every device of the
 * network (a new DNS search path) and waits until each of `devices` has it. A netmap caused by an
 * earlier change would have arrived before this one, so once the marker is in, the test can assert
 * that the unwanted netmap never came. `post` is an admin-API POST of the network's owner or an admin.
 */
export async function sendMarker(post: (path: string, body: unknown) => Promise<{ status: number }>, devices: TestDevice[]): Promise<string> {
  const marker = `marker-${++markers}.test`;
  const r = await post('/tailnet/-/dns/searchpaths', { searchPaths: [marker] });
  if (r.status !== 200) throw new Error(`setting the marker search path failed: ${r.status}`);
  for (const d of devices) await d.waitFor((n) => n.dns.searchPaths.includes(marker), 15_000);
  return marker;
}
