// One netcheck from a fresh UDP socket (not the WireGuard device's), printed as the JSON of
// `agent netcheck --json`. For the NAT lab's tests and for trying a STUN server or relay by hand:
//   node dist/scripts/netcheck-once.js --stun HOST:PORT [--stun ...] [--relay NAME=ws://HOST:PORT/relay ...] [--port N]
import { parseArgs } from 'node:util';
import { bindUdp, dgramTransport, netcheck, type UdpAddress } from '../agent/connectivity/netcheck.js';
import { probeRelay, RelayClient } from '../agent/connectivity/relay-client.js';
import { X25519Key } from '../wire/x25519.js';

function parseHostPort(s: string): UdpAddress {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(s);
  if (!m) throw new Error(`--stun wants HOST:PORT, got ${JSON.stringify(s)}`);
  return { address: m[1]!, port: Number(m[2]) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { stun: { type: 'string', multiple: true, default: [] }, relay: { type: 'string', multiple: true, default: [] }, port: { type: 'string', default: '0' } },
  });
  const stun = values.stun!.map(parseHostPort);
  const port = Number(values.port);
  const v4 = stun.some((s) => !s.address.includes(':')) ? await bindUdp('udp4', port) : null;
  const v6 = stun.some((s) => s.address.includes(':')) ? await bindUdp('udp6', port) : null;
  const key = X25519Key.generate();
  const clients: RelayClient[] = [];
  const relays = values.relay!.map((spec) => {
    const eq = spec.indexOf('=');
    if (eq < 1) throw new Error(`--relay wants NAME=URL, got ${JSON.stringify(spec)}`);
    const client = new RelayClient({ url: spec.slice(eq + 1), key, onPacket: () => {} });
    clients.push(client);
    return { name: spec.slice(0, eq), probe: (ms: number) => probeRelay(client, ms) };
  });
  const report = await netcheck(dgramTransport(v4, v6), { stun, relays });
  for (const c of clients) c.close();
  v4?.close();
  v6?.close();
  process.stdout.write(JSON.stringify(report) + '\n');
}

main().catch((err) => {
  process.stderr.write(`netcheck: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
