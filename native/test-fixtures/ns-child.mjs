// Test helper, run inside a network namespace by native/tun.test.ts (`ip netns exec NS node ns-child.mjs`):
// drives the compiled wrapper (dist/native/index.js) on commands read as JSON lines from stdin, one JSON
// reply line each on stdout. Tests keep their assertions in the parent.
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';

const { Tun } = await import(new URL('../../dist/native/index.js', import.meta.url).href);

const tuns = new Map();
const socks = new Map();
let nextId = 1;

function waitFor(cond, timeoutMs) {
  return new Promise((resolve) => {
    const deadline = Date.now() + timeoutMs;
    const tick = () => (cond() || Date.now() > deadline ? resolve() : setTimeout(tick, 5));
    tick();
  });
}

function packBatch(hexes) {
  const parts = hexes.map((h) => Buffer.from(h, 'hex'));
  const buf = Buffer.alloc(parts.reduce((n, p) => n + p.length, 0) + 8);
  const offsets = new Uint32Array(parts.length);
  const lengths = new Uint32Array(parts.length);
  let off = 8; // not at 0, to exercise offsets
  parts.forEach((p, i) => {
    p.copy(buf, off);
    offsets[i] = off;
    lengths[i] = p.length;
    off += p.length;
  });
  return { buf, offsets, lengths };
}

const ops = {
  open({ name, mtu, batch, offload }) {
    const t = Tun.open(name, { mtu, batch, offload });
    const id = nextId++;
    tuns.set(id, { t, packets: [], batchSizes: [], errors: [] });
    return { id, name: t.name, mtu: t.mtu, offload: t.offload };
  },
  // setMtu, addAddress, addRoute, setUp, stop, close, stats
  call({ id, method, args }) {
    return tuns.get(id).t[method](...(args ?? []));
  },
  start({ id }) {
    const e = tuns.get(id);
    e.t.start(
      (buf, offsets, lengths, count) => {
        e.batchSizes.push(count);
        for (let i = 0; i < count; i++) e.packets.push(buf.toString('hex', offsets[i], offsets[i] + lengths[i]));
      },
      (err) => e.errors.push({ code: err.code, message: err.message }),
    );
  },
  // Closes the device from inside its first batch callback; reports what the callback saw.
  closeInside({ id }) {
    const e = tuns.get(id);
    e.closedInside = 0;
    e.t.start((_buf, _offsets, _lengths, count) => {
      e.closedInside += count;
      e.t.close();
    });
  },
  closedInside({ id }) {
    return tuns.get(id).closedInside;
  },
  async packets({ id, until, timeoutMs }) {
    const e = tuns.get(id);
    // until: hex prefix-free matcher = substring that must appear in some packet
    await waitFor(() => (until ?? []).every((s) => e.packets.some((p) => p.includes(s))), timeoutMs ?? 2000);
    const out = { packets: e.packets, batchSizes: e.batchSizes };
    e.packets = [];
    e.batchSizes = [];
    return out;
  },
  write({ id, packets }) {
    const { buf, offsets, lengths } = packBatch(packets);
    return tuns.get(id).t.write(buf, offsets, lengths, packets.length);
  },
  writeRaw({ id, bufLen, offsets, lengths, count }) {
    return tuns.get(id).t.write(Buffer.alloc(bufLen), Uint32Array.from(offsets), Uint32Array.from(lengths), count);
  },
  writeOne({ id, packet }) {
    const p = Buffer.from(packet, 'hex');
    return tuns.get(id).t.writeOne(p, 0, p.length);
  },
  async udpBind({ addr, port }) {
    const s = dgram.createSocket(addr.includes(':') ? 'udp6' : 'udp4');
    const id = nextId++;
    const e = { s, msgs: [] };
    s.on('message', (m, r) => e.msgs.push({ payload: m.toString('hex'), from: r.address, port: r.port }));
    await new Promise((res, rej) => {
      s.once('error', rej);
      s.bind(port ?? 0, addr, res);
    });
    socks.set(id, e);
    return { id, port: s.address().port };
  },
  async udpSend({ sock, addr, port, payload }) {
    const e = socks.get(sock);
    await new Promise((res, rej) => e.s.send(Buffer.from(payload, 'hex'), port, addr, (err) => (err ? rej(err) : res())));
  },
  async udpRecv({ sock, min, timeoutMs }) {
    const e = socks.get(sock);
    await waitFor(() => e.msgs.length >= min, timeoutMs ?? 2000);
    const out = e.msgs;
    e.msgs = [];
    return out;
  },
  exists({ name }) {
    return existsSync(`/sys/class/net/${name}`);
  },
  // Forwards every packet read from one device into the other, both ways (a wire made of two TUNs).
  wire({ a, b }) {
    const ta = tuns.get(a).t;
    const tb = tuns.get(b).t;
    ta.start((buf, offsets, lengths, count) => void tb.write(buf, offsets, lengths, count));
    tb.start((buf, offsets, lengths, count) => void ta.write(buf, offsets, lengths, count));
  },
  errors({ id }) {
    return tuns.get(id).errors;
  },
};

const rl = createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const { seq, op, args } = JSON.parse(line);
  let reply;
  try {
    const value = await ops[op](args ?? {});
    reply = { seq, ok: true, value: value === undefined ? null : value };
  } catch (err) {
    reply = { seq, ok: false, error: { code: err.code, message: err.message, name: err.name } };
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
});
rl.on('close', () => {
  for (const { t } of tuns.values()) t.close();
  for (const { s } of socks.values()) s.close();
});
