// Measures UDP packet I/O on loopback within one process (one JS thread): Node's dgram against the
// addon's recvmmsg/sendmmsg socket ('mmsg': offloads off; 'gso': with UDP GSO and GRO), for each
// sender × receiver pairing, with 1400-byte datagrams.
// The sender keeps at most `window` datagrams in flight (sent, not yet received), so neither side
// overruns the other; the numbers are datagrams and payload bits that arrived per second.
//
//   npm run -s build && node dist/scripts/measure-udp.js [--seconds 3] [--size 1400] [--rounds 2] [--json]
import dgram from 'node:dgram';
import { UdpSocket } from '../native/index.js';

interface Result {
  /** datagrams that arrived per second of wall time */
  pps: number;
  gbps: number;
  /** datagrams per second of this process's CPU time (user + system): robust when the machine is shared */
  ppsPerCpu: number;
  gbpsPerCpu: number;
}

const args = process.argv.slice(2);
const opt = (name: string, def: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const seconds = opt('seconds', 3);
const size = opt('size', 1400);
const rounds = opt('rounds', 2);
const batch = opt('batch', 64);
const window = opt('window', 256);
const json = args.includes('--json');

type Kind = 'dgram' | 'mmsg' | 'gso';

interface Receiver {
  port: number;
  close(): void;
}

function dgramReceiver(onPackets: (n: number) => void): Promise<Receiver> {
  const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
  s.on('message', () => onPackets(1));
  return new Promise((resolve) =>
    s.bind(0, '127.0.0.1', () => resolve({ port: s.address().port, close: () => s.close() })),
  );
}

function mmsgReceiver(onPackets: (n: number) => void, offload: boolean): Receiver {
  const s = UdpSocket.bind(0, '127.0.0.1', { batch: 256, gso: offload, gro: offload });
  s.start((_b, _o, _l, _a, _p, _f, count) => onPackets(count));
  return { port: s.localPort, close: () => s.close() };
}

interface Sender {
  /** sends up to n datagrams; returns how many went out */
  send(n: number): number;
  close(): void;
}

async function dgramSender(port: number): Promise<Sender> {
  const s = dgram.createSocket({ type: 'udp4', sendBufferSize: 4 << 20 });
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
  await new Promise<void>((resolve) => s.connect(port, '127.0.0.1', () => resolve()));
  const payload = Buffer.alloc(size, 0x61);
  return {
    send(n) {
      for (let i = 0; i < n; i++) s.send(payload);
      return n;
    },
    close: () => s.close(),
  };
}

function mmsgSender(port: number, offload: boolean): Sender {
  const s = UdpSocket.bind(0, '127.0.0.1', { batch: Math.max(batch, 1), gso: offload, gro: offload });
  const n = Math.max(batch, window);
  const buf = Buffer.alloc(size * n, 0x61);
  const offsets = new Uint32Array(n);
  const lengths = new Uint32Array(n).fill(size);
  const addrs = new Uint8Array(16 * n);
  const ports = new Uint16Array(n).fill(port);
  const families = new Uint8Array(n).fill(4);
  for (let i = 0; i < n; i++) {
    offsets[i] = i * size;
    addrs.set([127, 0, 0, 1], 16 * i);
  }
  return {
    send: (k) => s.sendBatch(buf, offsets, lengths, addrs, ports, families, Math.min(k, n)),
    close: () => s.close(),
  };
}

async function run(tx: Kind, rx: Kind): Promise<Result> {
  let received = 0;
  let sent = 0;
  const onPackets = (k: number): void => {
    received += k;
  };
  const receiver = rx === 'dgram' ? await dgramReceiver(onPackets) : mmsgReceiver(onPackets, rx === 'gso');
  const sender = tx === 'dgram' ? await dgramSender(receiver.port) : mmsgSender(receiver.port, tx === 'gso');
  let lastProgress = performance.now();
  let lastReceived = 0;
  let startAt = 0;
  let startReceived = 0;
  const warmupMs = 300;
  const t0 = performance.now();
  let cpu0 = process.cpuUsage();
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      const now = performance.now();
      if (!startAt && now - t0 >= warmupMs) {
        startAt = now;
        startReceived = received;
        cpu0 = process.cpuUsage();
      }
      if (startAt && now - startAt >= seconds * 1000) return resolve();
      if (received !== lastReceived) {
        lastReceived = received;
        lastProgress = now;
      } else if (now - lastProgress > 50) {
        sent = received; // datagrams were lost: forget them, or the window would stay shut
        lastProgress = now;
      }
      const room = window - (sent - received);
      if (room > 0) sent += sender.send(Math.min(room, batch));
      setImmediate(pump);
    };
    pump();
  });
  const elapsed = (performance.now() - startAt) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const pps = (received - startReceived) / elapsed;
  const ppsCpu = (received - startReceived) / ((cpu.user + cpu.system) / 1e6);
  sender.close();
  receiver.close();
  const gbit = (p: number): number => Number(((p * size * 8) / 1e9).toFixed(3));
  return { pps: Math.round(pps), gbps: gbit(pps), ppsPerCpu: Math.round(ppsCpu), gbpsPerCpu: gbit(ppsCpu) };
}

const pairs: [Kind, Kind][] = [
  ['dgram', 'dgram'],
  ['mmsg', 'mmsg'],
  ['mmsg', 'dgram'],
  ['dgram', 'mmsg'],
  ['gso', 'gso'],
  ['gso', 'mmsg'],
];
const best = new Map<string, Result>();
for (let r = 0; r < rounds; r++) {
  for (const [tx, rx] of pairs) {
    const key = `${tx}->${rx}`;
    const res = await run(tx, rx);
    if (!json) {
      console.log(
        `round ${r + 1} ${key.padEnd(12)} ${String(res.pps).padStart(8)} pkt/s ${res.gbps.toFixed(3)} Gbit/s | ` +
          `per CPU-second: ${String(res.ppsPerCpu).padStart(8)} pkt ${res.gbpsPerCpu.toFixed(3)} Gbit`,
      );
    }
    const prev = best.get(key);
    if (!prev || res.ppsPerCpu > prev.ppsPerCpu) best.set(key, res);
  }
}
const out = {
  size,
  seconds,
  batch,
  window,
  best: Object.fromEntries(best),
  /** mmsg->mmsg over dgram->dgram, per CPU-second and per wall second */
  ratio: Number((best.get('mmsg->mmsg')!.ppsPerCpu / best.get('dgram->dgram')!.ppsPerCpu).toFixed(2)),
  ratioWall: Number((best.get('mmsg->mmsg')!.pps / best.get('dgram->dgram')!.pps).toFixed(2)),
  /** gso->gso (GSO + GRO) over dgram->dgram, per CPU-second */
  ratioOffload: Number((best.get('gso->gso')!.ppsPerCpu / best.get('dgram->dgram')!.ppsPerCpu).toFixed(2)),
};
console.log(
  json
    ? JSON.stringify(out)
    : `best of ${rounds} (by pkt per CPU-second): ${JSON.stringify(out.best)}\nratio mmsg/dgram: ${out.ratio} per CPU-second, ${out.ratioWall} wall; gso+gro/dgram: ${out.ratioOffload} per CPU-second`,
);
