// Fuzz: a million random and mutated packets never make the filter throw, and every one gets a verdict.

import { describe, expect, it } from 'vitest';
import { craft, type PacketSpec } from './craft.js';
import { DROP_REASON_NAMES, Filter } from './index.js';

// xorshift32: deterministic, so a failure can be replayed (the seed is in the test name).
function prng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

const A4 = { self: '100.64.0.1', peer: '100.64.0.2', q: '100.64.0.3' };
const A6 = { self: 'fd7a:115c:a1e0::1', peer: 'fd7a:115c:a1e0::2', q: 'fd7a:115c:a1e0::3' };

function templates(): Uint8Array[] {
  const specs: PacketSpec[] = [];
  for (const A of [A4, A6]) {
    for (const src of [A.peer, A.q]) {
      specs.push(
        { src, dst: A.self, proto: 'tcp', dport: 22 },
        { src, dst: A.self, proto: 'tcp', dport: 80, flags: 0x10, payload: 30 },
        { src, dst: A.self, proto: 'udp', sport: 53, dport: 4000, payload: 12 },
        { src, dst: A.self, proto: 'sctp', dport: 22 },
        { src, dst: A.self, proto: 'icmp' },
        { src, dst: A.self, proto: 'icmp', icmpType: A === A4 ? 0 : 129 },
        { src, dst: A.self, proto: 47, payload: 20 },
        { src, dst: A.self, proto: 'tcp', moreFragments: true, payload: 100, ...(A === A6 ? { ext: [44] } : {}) },
        { src, dst: A.self, proto: 'udp', fragOffset: 1480, payload: 40, ...(A === A6 ? { ext: [0, 44] } : {}) },
      );
    }
    specs.push({ src: A.peer, dst: A.self, proto: 'tcp', dport: 22, ext: [0, 43, 60] });
  }
  // Towards a quarantined peer (runOut's outbound check).
  for (const A of [A4, A6]) specs.push({ src: A.self, dst: A.q, proto: 'tcp', dport: 80 }, { src: A.self, dst: A.q, proto: 'udp', sport: 4000, dport: 22 });
  return specs.map(craft);
}

describe('fuzz', () => {
  const SEED = 0x5eed1234;
  it(`1,000,000 random and mutated packets: no throw, always a verdict (seed ${SEED.toString(16)})`, () => {
    const next = prng(SEED);
    const f = Filter.build({
      rules: [
        { SrcIPs: [A4.peer, A6.peer, '100.64.0.0/16'], DstPorts: [{ IP: '*', Ports: { First: 0, Last: 1024 } }] },
        { SrcIPs: ['*'], DstPorts: [{ IP: '*', Ports: { First: 0, Last: 65535 } }], IPProto: [47, 132] },
      ],
      localAddrs: [A4.self, A6.self, '10.0.0.0/8'],
      quarantined: [A4.q, A6.q],
      outbound: [{ SrcIPs: [A4.self, A6.self], DstPorts: [{ IP: '*', Ports: { First: 22, Last: 22 } }] }],
      flows: { capacity: 64 },
    });
    const tpl = templates();
    const buf = new Uint8Array(4096);
    const seen = new Array<number>(DROP_REASON_NAMES.length).fill(0);
    let bad = 0;
    let firstBad = '';
    const N = 1_000_000;
    for (let i = 0; i < N; i++) {
      const r = next();
      let offset = r & 255;
      let length: number;
      if ((r >>> 8) % 4 === 0) {
        // Random bytes, usually with a plausible version nibble.
        length = next() % 120;
        for (let k = 0; k < length; k++) buf[offset + k] = next() & 255;
        if (length > 0 && (r >>> 10) % 4 !== 0) buf[offset] = (buf[offset]! & 0x0f) | ((r >>> 12) % 2 === 0 ? 0x40 : 0x60);
      } else {
        // A valid packet with a few bytes changed, and sometimes a wrong length.
        const t = tpl[next() % tpl.length]!;
        buf.set(t, offset);
        length = t.length;
        const flips = 1 + (next() % 4);
        for (let k = 0; k < flips; k++) {
          const at = next() % Math.min(length, 80);
          buf[offset + at] = next() & 255;
        }
        const l = next() % 8;
        if (l === 0) length = next() % (length + 1);
        else if (l === 1) length += next() % 64;
        if (next() % 64 === 0) offset = buf.length - (next() % 50); // may run past the buffer
      }
      try {
        const v = next() % 3 === 0 ? f.runOut(buf, offset, length) : f.runIn(buf, offset, length);
        if (!Number.isInteger(v) || v < 0 || v >= DROP_REASON_NAMES.length) {
          if (bad++ === 0) firstBad = `verdict ${String(v)} at packet ${i}`;
        } else seen[v]!++;
      } catch (err) {
        if (bad++ === 0) firstBad = `threw ${String(err)} at packet ${i}`;
      }
    }
    expect(firstBad).toBe('');
    expect(bad).toBe(0);
    expect(seen.reduce((a, b) => a + b, 0)).toBe(N);
    // The stream reaches every verdict (so the fuzzing gets past the parser).
    for (let v = 0; v < seen.length; v++) expect(seen[v], DROP_REASON_NAMES[v]).toBeGreaterThan(0);
    const c = f.counters();
    expect(c.accepted + Object.values(c.dropped).reduce((a, b) => a + b, 0)).toBe(N);
  });
});
