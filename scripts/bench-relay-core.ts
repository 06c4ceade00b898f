// Throughput of the relay core over loopback: `npm run -s bench:relay-core [-- --json] [-- --batch N]`.
// The relay (RelayServer on an HTTP server) runs in a child process; this process runs two RelayClients,
// one sending 1400-byte packets (about a WireGuard packet on a 1500-byte path) as fast as its queue
// allows, in batch frames of N packets (default 16, as the batched data path will; 1 = one frame per
// packet), the other receiving. Gbit/s = packet bytes received per second over a measured window of a few
// seconds, after a warm-up. relayCpuGbps = the same bytes per second of CPU time the relay process used
// in that window: what one core of relay forwards, less disturbed by other load on a shared machine.
// {"gbps": n, "relayCpuGbps": n, "pps": n, "packetBytes": n, "batch": n, "seconds": n}
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { RelayClient } from '../agent/connectivity/relay-client.js';
import { RelayServer } from '../coord/relay/server.js';
import { X25519Key } from '../wire/x25519.js';

const PACKET = 1400;
const WARMUP_MS = 1000;
const MEASURE_MS = 4000;

async function serve(): Promise<void> {
  const http = createServer((_q, r) => r.writeHead(404).end());
  new RelayServer({ authorizer: { mayConnect: () => true, maySend: () => true } }).attach(http);
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  process.stdout.write(`${(http.address() as AddressInfo).port}\n`);
  // "mark" lines from the parent: answer with the CPU seconds used since the previous mark.
  let last = process.cpuUsage();
  createInterface({ input: process.stdin }).on('line', () => {
    const d = process.cpuUsage(last);
    last = process.cpuUsage();
    process.stdout.write(`${(d.user + d.system) / 1e6}\n`);
  });
  process.stdin.on('end', () => process.exit(0));
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const bi = process.argv.indexOf('--batch');
  const batch = bi > 0 ? Number(process.argv[bi + 1]) : 16;
  if (!Number.isInteger(batch) || batch < 1 || batch > 40) throw new Error('--batch wants 1 to 40');
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const nextLine = () => new Promise<string>((resolve) => lines.once('line', resolve));
  const port = await nextLine();
  const mark = async () => {
    const answer = nextLine();
    child.stdin!.write('mark\n');
    return Number(await answer);
  };
  const url = `ws://127.0.0.1:${port}/relay`;
  const [a, b] = [X25519Key.generate(), X25519Key.generate()];
  let received = 0;
  const sender = new RelayClient({ url, key: a, onPacket: () => {} }).start();
  const receiver = new RelayClient({ url, key: b, onPacket: (_s, p) => (received += p.length) }).start();
  await Promise.all([sender.waitConnected(), receiver.waitConnected()]);
  const packet = Buffer.alloc(PACKET, 0x5a);
  const packets = Array.from({ length: batch }, () => packet);
  let from = 0;
  let at = 0;
  let running = true;
  const pump = () => {
    if (!running) return;
    for (let i = 0; i < 256 / batch && sender.queuedBytes < 1 << 20; i++) {
      if (batch === 1) sender.send(b.publicKey, packet);
      else sender.sendBatch(b.publicKey, packets);
    }
    setImmediate(pump);
  };
  pump();
  await new Promise((r) => setTimeout(r, WARMUP_MS));
  await mark();
  from = received;
  at = performance.now();
  await new Promise((r) => setTimeout(r, MEASURE_MS));
  const seconds = (performance.now() - at) / 1000;
  const bytes = received - from;
  const relayCpu = await mark();
  running = false;
  sender.close();
  receiver.close();
  child.stdin!.end();
  const result = {
    gbps: Number(((bytes * 8) / seconds / 1e9).toFixed(3)),
    relayCpuGbps: Number(((bytes * 8) / relayCpu / 1e9).toFixed(3)),
    pps: Math.round(bytes / PACKET / seconds),
    packetBytes: PACKET,
    batch,
    seconds: Number(seconds.toFixed(2)),
  };
  if (json) console.log(JSON.stringify(result));
  else console.log(`relay core over loopback: ${result.gbps} Gbit/s (${result.pps} packets/s of ${PACKET} bytes in frames of ${batch}, ${result.seconds} s); ${result.relayCpuGbps} Gbit/s per CPU-second of the relay`);
}

if (process.argv.includes('--serve')) void serve();
else void main();
