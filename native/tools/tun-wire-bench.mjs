#!/usr/bin/env node
// Measures the TUN path of the addon without WireGuard: two network namespaces joined by a "wire" of two
// TUN devices, a node process forwarding every batch read from one device into the other, and iperf3
// (TCP) across it. Compares plain TUN I/O with offload (TSO on read, TCP coalescing on write).
// Needs root, iperf3, and the built addon and dist/ (npm run build:native && npm run build).
//
//   node native/tools/tun-wire-bench.mjs [--seconds 4] [--rounds 2] [--json]
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);
const args = process.argv.slice(2);

if (args[0] === '--forwarder') {
  // Runs inside namespace A: opens both devices, moves B to namespace B, forwards until stdin closes.
  const [, offloadArg, nsB, nameA, nameB] = args;
  const { Tun } = await import(new URL('../../dist/native/index.js', import.meta.url).href);
  const offload = offloadArg === '1';
  const a = Tun.open(nameA, { mtu: 1420, offload });
  const b = Tun.open(nameB, { mtu: 1420, offload });
  a.setUp(true);
  a.addAddress('10.231.0.1/24');
  execFileSync('ip', ['link', 'set', nameB, 'netns', nsB]);
  execFileSync('ip', ['-n', nsB, 'addr', 'add', '10.231.0.2/24', 'dev', nameB]);
  execFileSync('ip', ['-n', nsB, 'link', 'set', nameB, 'up']);
  let batches = 0;
  a.start((buf, o, l, c) => {
    batches++;
    b.write(buf, o, l, c);
  });
  b.start((buf, o, l, c) => void a.write(buf, o, l, c));
  let cpu0 = process.cpuUsage();
  process.stdin.on('data', (d) => {
    if (d.toString().includes('go')) cpu0 = process.cpuUsage();
  });
  process.stdin.on('end', () => {
    const cpu = process.cpuUsage(cpu0);
    const sa = a.stats();
    const sb = b.stats();
    console.log(JSON.stringify({ cpuSeconds: (cpu.user + cpu.system) / 1e6, batches, a: sa, b: sb }));
    a.close();
    b.close();
    process.exit(0);
  });
  console.log('ready');
} else {
  const opt = (name, def) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? Number(args[i + 1]) : def;
  };
  const seconds = opt('seconds', 4);
  const rounds = opt('rounds', 2);
  const json = args.includes('--json');
  const id = `${process.pid}`;
  const nsA = `mw-native-bench-${id}-a`;
  const nsB = `mw-native-bench-${id}-b`;
  const results = { plain: [], offload: [] };
  const run = (cmd, argv) =>
    new Promise((resolve, reject) => {
      const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${argv.join(' ')}: exit ${code}`))));
    });
  try {
    for (const ns of [nsA, nsB]) {
      execFileSync('ip', ['netns', 'add', ns]);
      execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    for (let r = 0; r < rounds; r++) {
      for (const mode of ['plain', 'offload']) {
        const fwd = spawn('ip', ['netns', 'exec', nsA, process.execPath, self, '--forwarder', mode === 'offload' ? '1' : '0', nsB, 'mwba', 'mwbb'], {
          stdio: ['pipe', 'pipe', 'inherit'],
        });
        let fout = '';
        fwd.stdout.on('data', (d) => (fout += d));
        while (!fout.includes('ready')) await new Promise((res) => setTimeout(res, 20));
        const server = spawn('ip', ['netns', 'exec', nsB, 'iperf3', '-s', '-1', '-B', '10.231.0.2'], { stdio: 'ignore' });
        await new Promise((res) => setTimeout(res, 300));
        fwd.stdin.write('go\n');
        const out = await run('ip', ['netns', 'exec', nsA, 'iperf3', '-c', '10.231.0.2', '-t', String(seconds), '-J']);
        fwd.stdin.end();
        await new Promise((res) => fwd.on('exit', res));
        server.kill();
        const j = JSON.parse(out);
        const f = JSON.parse(fout.replace('ready', '').trim());
        const gbps = j.end.sum_received.bits_per_second / 1e9;
        const res = {
          gbps: Number(gbps.toFixed(3)),
          retransmits: j.end.sum_sent.retransmits,
          forwarderCpu: Number((f.cpuSeconds / j.end.sum_received.seconds).toFixed(2)),
          gbpsPerForwarderCpu: Number((gbps / (f.cpuSeconds / j.end.sum_received.seconds)).toFixed(3)),
          packetsPerBatch: Number((f.a.rxPackets / Math.max(1, f.batches)).toFixed(1)),
          superRead: f.a.rxSuper,
          superWritten: f.b.txSuper,
        };
        results[mode].push(res);
        if (!json) console.log(`round ${r + 1} ${mode.padEnd(8)} ${JSON.stringify(res)}`);
      }
    }
  } finally {
    for (const ns of [nsA, nsB]) spawnSyncQuiet('ip', ['netns', 'del', ns]);
  }
  const best = (m) => results[m].reduce((x, y) => (y.gbps > x.gbps ? y : x));
  const out = { plain: best('plain'), offload: best('offload'), ratio: Number((best('offload').gbps / best('plain').gbps).toFixed(2)) };
  console.log(json ? JSON.stringify(out) : `best: ${JSON.stringify(out)}`);
}

function spawnSyncQuiet(cmd, argv) {
  try {
    execFileSync(cmd, argv, { stdio: 'ignore' });
  } catch {
    // already gone
  }
}
