#!/usr/bin/env node
// ChaCha20-Poly1305 over 1420-byte packets, one thread: the addon's batched, in-place AeadKey against
// node:crypto's per-packet cipher objects. Numbers are per second of this process's CPU time.
//
//   node native/tools/aead-bench.mjs [--seconds 2] [--json]
import crypto from 'node:crypto';

const { AeadKey } = await import(new URL('../../dist/native/index.js', import.meta.url).href);
const args = process.argv.slice(2);
const i = args.indexOf('--seconds');
const seconds = i >= 0 ? Number(args[i + 1]) : 2;
const json = args.includes('--json');
const key = crypto.randomBytes(32);
const N = 128;
const size = 1420;
const stride = size + 16 + 32;
const buf = Buffer.alloc(N * stride, 0x61);
const offsets = new Uint32Array(N).map((_, k) => k * stride);
const lengths = new Uint32Array(N).fill(size);
const sealedLengths = new Uint32Array(N).fill(size + 16);
const counters = new Float64Array(N);
const ok = new Uint8Array(N);
const nonce = Buffer.alloc(12);

function measure(fn) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let packets = 0;
  while (performance.now() - t0 < seconds * 1000) {
    fn();
    packets += N;
  }
  const cpu = process.cpuUsage(cpu0);
  const pps = packets / ((cpu.user + cpu.system) / 1e6);
  return { pps: Math.round(pps), gbps: Number(((pps * size * 8) / 1e9).toFixed(2)) };
}

let ctr = 0;
const aead = new AeadKey(key);
const addonSeal = measure(() => {
  for (let k = 0; k < N; k++) counters[k] = ctr++;
  aead.seal(buf, offsets, lengths, counters, N);
});
const addonOpen = measure(() => {
  // authenticating fails here (the bytes are not sealed with these counters), but all the work is done
  aead.open(buf, offsets, sealedLengths, counters, N, ok);
});
const nodeSeal = measure(() => {
  for (let k = 0; k < N; k++) {
    nonce.writeBigUInt64LE(BigInt(ctr++), 4);
    const c = crypto.createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    c.update(buf.subarray(offsets[k], offsets[k] + size));
    c.final();
    c.getAuthTag();
  }
});
const out = { size, batch: N, addonSeal, addonOpen, nodeSeal, ratio: Number((addonSeal.pps / nodeSeal.pps).toFixed(2)) };
console.log(json ? JSON.stringify(out) : JSON.stringify(out, null, 1));
