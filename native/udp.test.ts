// The addon's batched UDP socket (recvmmsg/sendmmsg) on loopback: batches in both directions, per-datagram
// source and destination for IPv4 and IPv6, drops counted rather than thrown, clear errors.
import { execFileSync, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { formatAddr, nativeAvailable, parseAddrInto, UdpSocket } from './index.js';

const open: UdpSocket[] = [];
const extra: dgram.Socket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
  for (const s of extra.splice(0)) s.close();
});

function bind(port: number, host?: string, opts?: Parameters<typeof UdpSocket.bind>[2]): UdpSocket {
  const s = UdpSocket.bind(port, host, opts);
  open.push(s);
  return s;
}

interface Got {
  text: string;
  from: string;
  port: number;
  family: number;
}

/** Collects datagrams (copied out of the reused buffers) and the batch sizes. */
function collect(s: UdpSocket): { got: Got[]; batches: number[]; until(n: number): Promise<void> } {
  const got: Got[] = [];
  const batches: number[] = [];
  s.start((buf, offsets, lengths, addrs, ports, families, count) => {
    batches.push(count);
    for (let i = 0; i < count; i++) {
      got.push({
        text: buf.toString('utf8', offsets[i], offsets[i]! + lengths[i]!),
        from: formatAddr(addrs, i, families[i]!),
        port: ports[i]!,
        family: families[i]!,
      });
    }
  });
  const until = async (n: number): Promise<void> => {
    const deadline = Date.now() + 10_000;
    while (got.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  };
  return { got, batches, until };
}

/** Builds a send batch of texts to one destination per entry. */
function batchOf(items: { text: string; to: string; port: number }[]) {
  const n = items.length;
  const buf = Buffer.alloc(items.reduce((k, it) => k + it.text.length, 0) + 3);
  const offsets = new Uint32Array(n);
  const lengths = new Uint32Array(n);
  const addrs = new Uint8Array(16 * n);
  const ports = new Uint16Array(n);
  const families = new Uint8Array(n);
  let off = 3;
  items.forEach((it, i) => {
    offsets[i] = off;
    lengths[i] = buf.write(it.text, off);
    off += lengths[i]!;
    families[i] = parseAddrInto(addrs, i, it.to);
    ports[i] = it.port;
  });
  return [buf, offsets, lengths, addrs, ports, families, n] as const;
}

describe.skipIf(!nativeAvailable())('UdpSocket', () => {
  it('sends a batch with sendmmsg and receives it in batches with each source (IPv4, loopback)', async () => {
    const plain = { gso: false, gro: false };
    const rx = bind(0, '127.0.0.1', plain);
    const tx = bind(0, '127.0.0.1', plain);
    expect(tx.offload).toEqual({ gso: false, gro: false });
    expect(rx.localPort).toBeGreaterThan(0);
    const c = collect(rx);
    const n = 100;
    const items = Array.from({ length: n }, (_, i) => ({ text: `datagram-${i}`, to: '127.0.0.1', port: rx.localPort }));
    expect(tx.sendBatch(...batchOf(items))).toBe(n);
    await c.until(n);
    expect(c.got.map((g) => g.text)).toEqual(items.map((it) => it.text));
    expect(c.got.every((g) => g.from === '127.0.0.1' && g.port === tx.localPort && g.family === 4)).toBe(true);
    expect(Math.max(...c.batches)).toBeGreaterThan(1);
    expect(tx.stats()).toMatchObject({ txPackets: n, txDropped: 0, txCoalesced: 0 });
    expect(rx.stats()).toMatchObject({ rxPackets: n, rxTruncated: 0, rxCoalesced: 0 });
  });

  it('is dual-stack by default: IPv4 peers come as family 4, IPv6 peers as family 6, and it sends to both', async () => {
    const dual = bind(0);
    const c = collect(dual);
    const v4 = bind(0, '127.0.0.1');
    const v6 = bind(0, '::1');
    expect(v4.sendBatch(...batchOf([{ text: 'over-v4', to: '127.0.0.1', port: dual.localPort }]))).toBe(1);
    expect(v6.sendBatch(...batchOf([{ text: 'over-v6', to: '::1', port: dual.localPort }]))).toBe(1);
    await c.until(2);
    const byText = new Map(c.got.map((g) => [g.text, g]));
    expect(byText.get('over-v4')).toMatchObject({ from: '127.0.0.1', port: v4.localPort, family: 4 });
    expect(byText.get('over-v6')).toMatchObject({ from: '::1', port: v6.localPort, family: 6 });

    // one batch from the dual-stack socket to an IPv4 and an IPv6 peer (Node's dgram on the other side)
    const got: string[] = [];
    for (const type of ['udp4', 'udp6'] as const) {
      const s = dgram.createSocket(type);
      extra.push(s);
      s.on('message', (m, r) => got.push(`${m.toString()} from ${r.address}:${r.port}`));
      await new Promise<void>((r) => s.bind(0, type === 'udp4' ? '127.0.0.1' : '::1', () => r()));
    }
    const [p4, p6] = extra.map((s) => s.address().port);
    const sent = dual.sendBatch(
      ...batchOf([
        { text: 'to-v4', to: '127.0.0.1', port: p4! },
        { text: 'to-v6', to: '::1', port: p6! },
      ]),
    );
    expect(sent).toBe(2);
    const deadline = Date.now() + 3000;
    while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(got.sort()).toEqual([`to-v4 from 127.0.0.1:${dual.localPort}`, `to-v6 from ::1:${dual.localPort}`]);
  });

  it('with GSO and GRO, datagrams go out as runs and coalesced ones are split back, in order, batch by batch', async () => {
    const rx = bind(0, '127.0.0.1', { batch: 32 }); // smaller than a coalesced message (up to 64 datagrams)
    const other = bind(0, '127.0.0.1', { gro: false });
    const tx = bind(0, '127.0.0.1');
    expect(tx.offload.gso).toBe(true);
    expect(rx.offload.gro).toBe(true);
    const c = collect(rx);
    const c2 = collect(other);
    const pad = (i: number, size: number): string => `#${i}:`.padEnd(size, String.fromCharCode(97 + (i % 26)));
    const items: { text: string; to: string; port: number }[] = [];
    for (let i = 0; i < 300; i++) {
      // runs of equal sizes, a shorter datagram now and then, and interleaved ones to another socket
      const size = i % 50 === 49 ? 333 : i < 150 ? 1000 : 1200;
      items.push({ text: pad(i, size), to: '127.0.0.1', port: i % 97 === 96 ? other.localPort : rx.localPort });
    }
    const want = items.filter((it) => it.port === rx.localPort).map((it) => it.text);
    const want2 = items.filter((it) => it.port === other.localPort).map((it) => it.text);
    expect(tx.sendBatch(...batchOf(items))).toBe(items.length);
    expect(tx.stats()).toMatchObject({ txPackets: items.length, txDropped: 0 });
    await c.until(want.length);
    await c2.until(want2.length);
    expect(c.got.map((g) => g.text)).toEqual(want);
    expect(c2.got.map((g) => g.text)).toEqual(want2);
    expect(c.got.every((g) => g.from === '127.0.0.1' && g.port === tx.localPort)).toBe(true);
    expect(Math.max(...c.batches)).toBeLessThanOrEqual(32);
    expect(rx.stats()).toMatchObject({ rxPackets: want.length, rxBytes: want.reduce((n, t) => n + t.length, 0) });
    // the offloads were really used: runs went out as GSO messages, and arrived coalesced
    expect(tx.stats().txCoalesced).toBeGreaterThan(0);
    expect(tx.stats().txCoalesced).toBeLessThan(items.length / 4);
    expect(rx.stats().rxCoalesced).toBeGreaterThan(0);
  });

  it('drops and counts what cannot be sent or received, without throwing', async () => {
    const rx = bind(0, '127.0.0.1', { maxPacket: 16, gro: false });
    const c = collect(rx);
    const tx = bind(0, '127.0.0.1');
    const sent = tx.sendBatch(
      ...batchOf([
        { text: 'short', to: '127.0.0.1', port: rx.localPort },
        { text: 'to an IPv6 peer from an IPv4 socket', to: '::1', port: rx.localPort },
        { text: 'this one is longer than sixteen bytes', to: '127.0.0.1', port: rx.localPort },
        { text: 'short-2', to: '127.0.0.1', port: rx.localPort },
      ]),
    );
    expect(sent).toBe(4);
    expect(tx.stats()).toMatchObject({ txPackets: 3, txDropped: 1 });
    await c.until(2);
    // a later datagram from the same sender: the truncated one did not come before it
    tx.sendBatch(...batchOf([{ text: 'marker', to: '127.0.0.1', port: rx.localPort }]));
    await c.until(3);
    expect(c.got.map((g) => g.text)).toEqual(['short', 'short-2', 'marker']);
    expect(rx.stats()).toMatchObject({ rxPackets: 3, rxTruncated: 1 });
  });

  it('refuses bad arguments and use after close with clear errors', () => {
    expect(() => UdpSocket.bind(70000)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => UdpSocket.bind(0, 'not-an-address')).toThrow(/invalid host 'not-an-address'/);
    expect(() => UdpSocket.bind(0, '127.0.0.1', { batch: 5000 })).toThrow(/batch must be/);
    const a = bind(0, '127.0.0.1');
    let inUse: unknown;
    try {
      bind(a.localPort, '127.0.0.1');
    } catch (err) {
      inUse = err;
    }
    expect(inUse).toMatchObject({ code: 'EADDRINUSE' });
    expect((inUse as Error).message).toContain(`bind UDP socket to [127.0.0.1]:${a.localPort}`);

    const [buf, offsets, lengths, addrs, ports, families] = batchOf([{ text: 'x', to: '127.0.0.1', port: 9 }]);
    expect(() => a.sendBatch(buf, offsets, lengths, addrs, ports, families, 2)).toThrow(/count exceeds/);
    expect(() => a.sendBatch(buf, Uint32Array.of(buf.length), lengths, addrs, ports, families, 1)).toThrow(
      /extends beyond buf/,
    );
    expect(() => a.sendBatch(buf, offsets, lengths, addrs, new Uint32Array(1) as never, families, 1)).toThrow(
      /ports must be a Uint16Array/,
    );
    a.start(() => {});
    a.close();
    a.close();
    expect(() => a.sendBatch(buf, offsets, lengths, addrs, ports, families, 1)).toThrow(
      expect.objectContaining({ code: 'EBADF', message: expect.stringContaining('UDP socket is closed') }),
    );
    expect(() => a.start(() => {})).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(a.stats().txPackets).toBe(0);
  });

  it('survives close() and stop() called from inside the batch callback', async () => {
    const a = bind(0, '127.0.0.1', { batch: 4 });
    const b = bind(0, '127.0.0.1', { batch: 4, gro: false });
    const tx = bind(0, '127.0.0.1');
    let seenA = 0;
    let seenB = 0;
    a.start((_b, _o, _l, _a, _p, _f, count) => {
      seenA += count;
      a.close();
    });
    b.start((_b, _o, _l, _a, _p, _f, count) => {
      seenB += count;
      b.stop();
    });
    const items = (port: number) => Array.from({ length: 20 }, (_, i) => ({ text: `x${i}`, to: '127.0.0.1', port }));
    tx.sendBatch(...batchOf(items(a.localPort)));
    tx.sendBatch(...batchOf(items(b.localPort)));
    // Wait for the first callbacks; then for a marker sent afterwards to a third socket, so that any
    // further (unwanted) callback of a or b would have run by the time the marker arrives.
    const deadline0 = Date.now() + 10_000;
    while ((seenA === 0 || seenB === 0) && Date.now() < deadline0) await new Promise((r) => setTimeout(r, 5));
    const mrx = bind(0, '127.0.0.1');
    const marker = collect(mrx);
    tx.sendBatch(...batchOf([{ text: 'marker', to: '127.0.0.1', port: mrx.localPort }]));
    await marker.until(1);
    expect(marker.got.map((g) => g.text)).toEqual(['marker']);
    expect(seenA).toBeGreaterThan(0);
    expect(seenA).toBeLessThanOrEqual(4);
    expect(seenB).toBeGreaterThan(0);
    expect(seenB).toBeLessThanOrEqual(4);
    expect(() => a.stats()).not.toThrow();
    // b was only stopped: it resumes where it left off
    let more = 0;
    b.start((_b, _o, _l, _a, _p, _f, count) => void (more += count));
    const deadline = Date.now() + 2000;
    while (seenB + more < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(seenB + more).toBe(20);
  });

  it('reports an exception thrown by the batch handler as uncaught, and keeps working', async () => {
    const rx = bind(0, '127.0.0.1');
    const tx = bind(0, '127.0.0.1');
    const seen: string[] = [];
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => void uncaught.push(err);
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', onUncaught);
    try {
      rx.start((buf, offsets, lengths, _a, _p, _f, count) => {
        for (let i = 0; i < count; i++) seen.push(buf.toString('utf8', offsets[i], offsets[i]! + lengths[i]!));
        if (seen.length === 1) throw new Error('handler failed');
      });
      tx.sendBatch(...batchOf([{ text: 'one', to: '127.0.0.1', port: rx.localPort }]));
      const deadline = Date.now() + 3000;
      while (uncaught.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      tx.sendBatch(...batchOf([{ text: 'two', to: '127.0.0.1', port: rx.localPort }]));
      while (seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    } finally {
      process.off('uncaughtException', onUncaught);
      for (const l of listeners) process.on('uncaughtException', l);
    }
    expect((uncaught[0] as Error).message).toBe('handler failed');
    expect(seen).toEqual(['one', 'two']);
  });
});

describe.skipIf(!nativeAvailable() || process.getuid?.() !== 0)('UdpSocket GSO fallback (in a network namespace)', () => {
  const ns = `mw-native-u${process.pid}`;
  afterAll(() => void spawnSync('ip', ['netns', 'del', ns]));

  it('sends datagrams larger than the path MTU one by one, and keeps GSO for smaller ones', () => {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up', 'mtu', '1300']);
    const index = fileURLToPath(new URL('../dist/native/index.js', import.meta.url));
    const script = `
      const { UdpSocket, parseAddrInto } = await import(${JSON.stringify(index)});
      const rx = UdpSocket.bind(0, '127.0.0.1'), tx = UdpSocket.bind(0, '127.0.0.1');
      let got = 0, bytes = 0;
      rx.start((b, o, l, a, p, f, count) => { got += count; for (let i = 0; i < count; i++) bytes += l[i]; });
      const n = 20, buf = Buffer.alloc(n * 1400, 1), offs = new Uint32Array(n), lens = new Uint32Array(n);
      const addrs = new Uint8Array(16 * n), ports = new Uint16Array(n).fill(rx.localPort), fams = new Uint8Array(n);
      for (let i = 0; i < n; i++) { offs[i] = i * 1400; fams[i] = parseAddrInto(addrs, i, '127.0.0.1'); }
      const out = {};
      lens.fill(1400); // above the MTU: the kernel refuses GSO, IP fragments them one by one
      out.big = [tx.sendBatch(buf, offs, lens, addrs, ports, fams, n), tx.sendBatch(buf, offs, lens, addrs, ports, fams, n)];
      out.afterBig = tx.stats();
      lens.fill(1000);
      out.small = tx.sendBatch(buf, offs, lens, addrs, ports, fams, n);
      out.afterSmall = tx.stats();
      out.gso = tx.offload.gso;
      setTimeout(() => { out.got = got; out.bytes = bytes; console.log(JSON.stringify(out)); rx.close(); tx.close(); }, 300);
    `;
    const out = execFileSync('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    const r = JSON.parse(out.trim());
    expect(r.big).toEqual([20, 20]);
    expect(r.afterBig).toMatchObject({ txPackets: 40, txDropped: 0, txCoalesced: 0 });
    expect(r.small).toBe(20);
    expect(r.afterSmall).toMatchObject({ txPackets: 60, txDropped: 0, txCoalesced: 1 });
    expect(r.gso).toBe(true);
    expect(r.got).toBe(60);
    expect(r.bytes).toBe(40 * 1400 + 20 * 1000);
  });
});

describe('address helpers', () => {
  it('parse and format IPv4 and IPv6 in the 16-byte layout', () => {
    const a = new Uint8Array(48);
    expect(parseAddrInto(a, 0, '192.168.1.20')).toBe(4);
    expect([...a.subarray(0, 16)]).toEqual([192, 168, 1, 20, ...Array(12).fill(0)]);
    expect(parseAddrInto(a, 1, 'fd7a:115c:a1e0::1')).toBe(6);
    expect(formatAddr(a, 1, 6)).toBe('fd7a:115c:a1e0::1');
    expect(parseAddrInto(a, 2, '::')).toBe(6);
    expect(formatAddr(a, 2, 6)).toBe('::');
    expect(() => parseAddrInto(a, 0, '1.2.3.256')).toThrow(/invalid IPv4/);
    expect(() => parseAddrInto(a, 0, '1::2::3')).toThrow(/invalid IP address/);
    expect(() => parseAddrInto(a, 0, '1:2:3:4:5:6:7')).toThrow(/invalid IP address/);
    expect(() => parseAddrInto(a, 0, 'hello')).toThrow(/invalid IP address/);
  });
});
