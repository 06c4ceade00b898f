// The TUN device of the native addon, exercised for real inside a network namespace made by this test:
// a child node process (test-fixtures/ns-child.mjs, run with `ip netns exec`) opens and drives the device,
// the kernel of that namespace sends and receives through it, and the assertions are made here.
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addrToBytes, parseAddr } from '../wire/addr.js';
import { nativeAvailable } from './index.js';

const ns = `mw-native-${process.pid}`;
const ns2 = `mw-native-${process.pid}-b`; // the far side of the two-TUN wire
const devName = `mwt${process.pid % 10000}`;
const childScript = fileURLToPath(new URL('./test-fixtures/ns-child.mjs', import.meta.url));
const distIndex = fileURLToPath(new URL('../dist/native/index.js', import.meta.url));

interface Reply {
  seq: number;
  ok: boolean;
  value?: unknown;
  error?: { code: string; message: string; name: string };
}

class Child {
  readonly proc: ChildProcess;
  #seq = 0;
  #waiting = new Map<number, (r: Reply) => void>();
  stderr = '';

  constructor(netns: string) {
    this.proc = spawn('ip', ['netns', 'exec', netns, process.execPath, childScript], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      const r = JSON.parse(line) as Reply;
      this.#waiting.get(r.seq)?.(r);
      this.#waiting.delete(r.seq);
    });
  }

  raw(op: string, args: object = {}): Promise<Reply> {
    const seq = ++this.#seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`child did not answer ${op}; stderr: ${this.stderr}`)), 10_000);
      this.#waiting.set(seq, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.proc.stdin!.write(JSON.stringify({ seq, op, args }) + '\n');
    });
  }

  async call<T = unknown>(op: string, args: object = {}): Promise<T> {
    const r = await this.raw(op, args);
    if (!r.ok) throw new Error(`${op} failed: ${r.error!.code} ${r.error!.message}`);
    return r.value as T;
  }

  async fails(op: string, args: object = {}): Promise<{ code: string; message: string; name: string }> {
    const r = await this.raw(op, args);
    if (r.ok) throw new Error(`${op} unexpectedly succeeded`);
    return r.error!;
  }

  end(): Promise<void> {
    return new Promise((resolve) => {
      if (this.proc.exitCode !== null || this.proc.signalCode) return resolve();
      const t = setTimeout(() => this.proc.kill('SIGKILL'), 3000);
      this.proc.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      this.proc.stdin!.end();
    });
  }
}

// ---- packet construction (test side; the addon does not parse packets) ----

function csum(buf: Buffer, start = 0, end = buf.length, init = 0): number {
  let s = init;
  for (let i = start; i < end; i += 2) s += (buf[i]! << 8) | (i + 1 < end ? buf[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** The 4 or 16 bytes of an address. */
function addrBytes(a: string): Buffer {
  return Buffer.from(addrToBytes(parseAddr(a)!));
}

function ipv4(src: string, dst: string, proto: number, payload: Buffer): Buffer {
  const p = Buffer.alloc(20 + payload.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[8] = 64;
  p[9] = proto;
  addrBytes(src).copy(p, 12);
  addrBytes(dst).copy(p, 16);
  p.writeUInt16BE(~csum(p, 0, 20) & 0xffff, 10);
  payload.copy(p, 20);
  return p;
}

function udp4(src: string, sport: number, dst: string, dport: number, data: Buffer): Buffer {
  const u = Buffer.alloc(8 + data.length);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(u.length, 4);
  data.copy(u, 8); // checksum 0: none, allowed for IPv4
  return ipv4(src, dst, 17, u);
}

function echo4(src: string, dst: string, id: number, seq: number): Buffer {
  const m = Buffer.alloc(16);
  m[0] = 8; // echo request
  m.writeUInt16BE(id, 4);
  m.writeUInt16BE(seq, 6);
  m.write('meshward', 8);
  m.writeUInt16BE(~csum(m) & 0xffff, 2);
  return ipv4(src, dst, 1, m);
}

function udp6(src: string, sport: number, dst: string, dport: number, data: Buffer): Buffer {
  const p = Buffer.alloc(48 + data.length);
  p[0] = 0x60;
  p.writeUInt16BE(8 + data.length, 4);
  p[6] = 17;
  p[7] = 64;
  addrBytes(src).copy(p, 8);
  addrBytes(dst).copy(p, 24);
  p.writeUInt16BE(sport, 40);
  p.writeUInt16BE(dport, 42);
  p.writeUInt16BE(8 + data.length, 44);
  data.copy(p, 48);
  // pseudo-header: addresses, length, next header
  const pseudo = csum(p, 8, 40, 8 + data.length + 17);
  const sum = ~csum(p, 40, p.length, pseudo) & 0xffff;
  p.writeUInt16BE(sum === 0 ? 0xffff : sum, 46);
  return p;
}

function tcp4(src: string, sport: number, dst: string, dport: number, seq: number, data: Buffer, badSum = false): Buffer {
  const t = Buffer.alloc(20 + data.length);
  t.writeUInt16BE(sport, 0);
  t.writeUInt16BE(dport, 2);
  t.writeUInt32BE(seq >>> 0, 4);
  t.writeUInt32BE(1, 8); // ack
  t[12] = 5 << 4;
  t[13] = 0x10; // ACK
  t.writeUInt16BE(65535, 14);
  data.copy(t, 20);
  const pseudo = Buffer.concat([addrBytes(src), addrBytes(dst), Buffer.from([0, 6, t.length >> 8, t.length & 255])]);
  const sum = ~csum(t, 0, t.length, csum(pseudo)) & 0xffff;
  t.writeUInt16BE(badSum ? sum ^ 0x5a5a : sum, 16);
  return ipv4(src, dst, 6, t);
}

interface Parsed {
  version: number;
  proto: number;
  src: string;
  dst: string;
  body: Buffer;
}

function parse(hex: string): Parsed {
  const p = Buffer.from(hex, 'hex');
  if (p[0]! >> 4 === 4) {
    const ihl = (p[0]! & 15) * 4;
    return { version: 4, proto: p[9]!, src: [...p.subarray(12, 16)].join('.'), dst: [...p.subarray(16, 20)].join('.'), body: p.subarray(ihl) };
  }
  const hexAddr = (b: Buffer): string => b.toString('hex');
  return { version: 6, proto: p[6]!, src: hexAddr(p.subarray(8, 24)), dst: hexAddr(p.subarray(24, 40)), body: p.subarray(40) };
}

const hexText = (s: string): string => Buffer.from(s).toString('hex');

// ---- the tests ----

const canRun = nativeAvailable() && process.getuid?.() === 0;
let child: Child | undefined;
let tunId = 0;

beforeAll(async () => {
  if (!canRun) return;
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
  child = new Child(ns);
});

afterAll(async () => {
  await child?.end();
  spawnSync('ip', ['netns', 'del', ns]);
  spawnSync('ip', ['netns', 'del', ns2]);
});

describe.skipIf(!canRun)('Tun (in a network namespace)', () => {
  it('opens with a given name and MTU, and configures addresses and routes', async () => {
    const t = await child!.call<{ id: number; name: string; mtu: number }>('open', { name: devName, mtu: 1400 });
    tunId = t.id;
    expect(t.name).toBe(devName);
    expect(t.mtu).toBe(1400);
    await child!.call('call', { id: tunId, method: 'setUp', args: [true] });
    await child!.call('call', { id: tunId, method: 'addAddress', args: ['10.201.0.1/24'] });
    await child!.call('call', { id: tunId, method: 'addAddress', args: ['10.201.0.1/24'] }); // idempotent
    await child!.call('call', { id: tunId, method: 'addAddress', args: ['fd01:201::1/64'] });
    await child!.call('call', { id: tunId, method: 'addRoute', args: ['10.202.0.0/24'] });
    await child!.call('call', { id: tunId, method: 'addRoute', args: ['fd01:202::/48'] });
    const addrs = execFileSync('ip', ['netns', 'exec', ns, 'ip', 'addr', 'show', 'dev', devName], { encoding: 'utf8' });
    expect(addrs).toContain('inet 10.201.0.1/24');
    expect(addrs).toContain('inet6 fd01:201::1/64');
    expect(addrs).toMatch(/mtu 1400/);
    expect(addrs).toMatch(/<[^>]*\bUP\b/);
    const routes = execFileSync('ip', ['netns', 'exec', ns, 'ip', 'route', 'show', 'dev', devName], { encoding: 'utf8' });
    expect(routes).toContain('10.202.0.0/24');
    const routes6 = execFileSync('ip', ['netns', 'exec', ns, 'ip', '-6', 'route', 'show', 'dev', devName], { encoding: 'utf8' });
    expect(routes6).toContain('fd01:202::/48');
    await child!.call('call', { id: tunId, method: 'setMtu', args: [1420] });
    expect(execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'show', devName], { encoding: 'utf8' })).toMatch(/mtu 1420/);
  });

  it('removes addresses without touching the others or the device, and says whether one was there', async () => {
    const show = () => execFileSync('ip', ['netns', 'exec', ns, 'ip', 'addr', 'show', 'dev', devName], { encoding: 'utf8' });
    await child!.call('call', { id: tunId, method: 'addAddress', args: ['10.201.7.1/32'] });
    await child!.call('call', { id: tunId, method: 'addAddress', args: ['fd01:201::7/128'] });
    expect(show()).toContain('inet 10.201.7.1/32');
    expect(await child!.call('call', { id: tunId, method: 'removeAddress', args: ['10.201.7.1/32'] })).toBe(true);
    expect(await child!.call('call', { id: tunId, method: 'removeAddress', args: ['fd01:201::7/128'] })).toBe(true);
    let addrs = show();
    expect(addrs).not.toContain('10.201.7.1');
    expect(addrs).not.toContain('fd01:201::7/128');
    expect(addrs).toContain('inet 10.201.0.1/24');
    expect(addrs).toContain('inet6 fd01:201::1/64');
    // Already gone, or never there: false, not an error.
    expect(await child!.call('call', { id: tunId, method: 'removeAddress', args: ['10.201.7.1/32'] })).toBe(false);
    expect(await child!.call('call', { id: tunId, method: 'removeAddress', args: ['fd01:201::99/128'] })).toBe(false);
    // The prefix length is part of the address: 10.201.0.1/32 is not 10.201.0.1/24.
    expect(await child!.call('call', { id: tunId, method: 'removeAddress', args: ['10.201.0.1/32'] })).toBe(false);
    expect(show()).toContain('inet 10.201.0.1/24');
    const bad = await child!.fails('call', { id: tunId, method: 'removeAddress', args: ['10.0.0.300/24'] });
    expect(bad.code).toBe('EINVAL');
    // Remove and add again: the device keeps working with its new address.
    await child!.call('call', { id: tunId, method: 'addAddress', args: ['10.201.8.1/32'] });
    addrs = show();
    expect(addrs).toContain('inet 10.201.8.1/32');
    expect(await child!.call('call', { id: tunId, method: 'removeAddress', args: ['10.201.8.1/32'] })).toBe(true);
  });

  it('hands packets the kernel sends through the device to JS in batches (IPv4, routed, IPv6)', async () => {
    await child!.call('start', { id: tunId });
    const s4 = await child!.call<{ id: number; port: number }>('udpBind', { addr: '10.201.0.1' });
    const s6 = await child!.call<{ id: number; port: number }>('udpBind', { addr: 'fd01:201::1' });
    await child!.call('udpSend', { sock: s4.id, addr: '10.201.0.2', port: 5555, payload: hexText('hello-tun') });
    await child!.call('udpSend', { sock: s4.id, addr: '10.202.0.7', port: 5556, payload: hexText('routed') });
    await child!.call('udpSend', { sock: s6.id, addr: 'fd01:201::2', port: 5557, payload: hexText('hello-v6') });
    const got = await child!.call<{ packets: string[]; batchSizes: number[] }>('packets', {
      id: tunId,
      until: [hexText('hello-tun'), hexText('routed'), hexText('hello-v6')],
    });
    const parsed = got.packets.map(parse);
    const a = parsed.find((p) => p.body.subarray(8).toString() === 'hello-tun');
    expect(a).toMatchObject({ version: 4, proto: 17, src: '10.201.0.1', dst: '10.201.0.2' });
    expect(a!.body.readUInt16BE(0)).toBe(s4.port);
    expect(a!.body.readUInt16BE(2)).toBe(5555);
    const b = parsed.find((p) => p.body.subarray(8).toString() === 'routed');
    expect(b).toMatchObject({ version: 4, dst: '10.202.0.7' });
    const c = parsed.find((p) => p.body.subarray(8).toString() === 'hello-v6');
    expect(c).toMatchObject({ version: 6, proto: 17, dst: addrBytes('fd01:201::2').toString('hex') });
    expect(got.batchSizes.reduce((x, y) => x + y, 0)).toBe(got.packets.length);
  });

  it('writes a batch into the kernel: datagrams reach a socket, an invalid packet is dropped and counted', async () => {
    const s4 = await child!.call<{ id: number; port: number }>('udpBind', { addr: '10.201.0.1' });
    const before = await child!.call<{ txPackets: number; txDropped: number }>('call', { id: tunId, method: 'stats' });
    const written = await child!.call<number>('write', {
      id: tunId,
      packets: [
        udp4('10.201.0.2', 7777, '10.201.0.1', s4.port, Buffer.from('from-tun-1')).toString('hex'),
        '1000000000000000deadbeef', // IP version 1: the kernel refuses it
        udp4('10.201.0.2', 7777, '10.201.0.1', s4.port, Buffer.from('from-tun-2')).toString('hex'),
      ],
    });
    expect(written).toBe(3);
    const msgs = await child!.call<{ payload: string; from: string; port: number }[]>('udpRecv', { sock: s4.id, min: 2 });
    expect(msgs.map((m) => Buffer.from(m.payload, 'hex').toString())).toEqual(['from-tun-1', 'from-tun-2']);
    expect(msgs[0]).toMatchObject({ from: '10.201.0.2', port: 7777 });
    const after = await child!.call<{ txPackets: number; txDropped: number }>('call', { id: tunId, method: 'stats' });
    expect(after.txPackets - before.txPackets).toBe(2);
    expect(after.txDropped - before.txDropped).toBe(1);

    const s6 = await child!.call<{ id: number; port: number }>('udpBind', { addr: 'fd01:201::1' });
    const ok = await child!.call<boolean>('writeOne', {
      id: tunId,
      packet: udp6('fd01:201::2', 8888, 'fd01:201::1', s6.port, Buffer.from('v6-from-tun')).toString('hex'),
    });
    expect(ok).toBe(true);
    const m6 = await child!.call<{ payload: string; from: string; port: number }[]>('udpRecv', { sock: s6.id, min: 1 });
    expect(m6.map((m) => Buffer.from(m.payload, 'hex').toString())).toEqual(['v6-from-tun']);
    expect(m6[0]).toMatchObject({ from: 'fd01:201::2', port: 8888 });
    expect(await child!.call<boolean>('writeOne', { id: tunId, packet: '10deadbeef' })).toBe(false);
  });

  it('round trip: echo requests written in one batch come back as echo replies, several per batch', async () => {
    await child!.call('packets', { id: tunId, timeoutMs: 0 }); // drain
    const n = 40;
    const reqs = Array.from({ length: n }, (_, i) => echo4('10.201.0.2', '10.201.0.1', 0x4d57, i).toString('hex'));
    expect(await child!.call<number>('write', { id: tunId, packets: reqs })).toBe(n);
    const got = await child!.call<{ packets: string[]; batchSizes: number[] }>('packets', {
      id: tunId,
      until: [echoReplyMarker(n - 1)],
    });
    const replies = got.packets
      .map(parse)
      .filter((p) => p.proto === 1 && p.body[0] === 0 && p.body.readUInt16BE(4) === 0x4d57);
    expect(replies.map((p) => p.body.readUInt16BE(6))).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(replies[0]).toMatchObject({ src: '10.201.0.1', dst: '10.201.0.2' });
    expect(Math.max(...got.batchSizes)).toBeGreaterThan(1);
  });

  it('offload: coalesces written TCP segments only when they are in sequence with right checksums', async () => {
    const t = await child!.call<{ id: number; offload: boolean }>('open', { name: `mwg${process.pid % 10000}`, offload: true });
    expect(t.offload).toBe(true);
    try {
      await child!.call('call', { id: t.id, method: 'setUp', args: [true] });
      await child!.call('call', { id: t.id, method: 'addAddress', args: ['10.206.0.1/24'] });
      const seg = (i: number, bad = false): string =>
        tcp4('10.206.0.2', 4000, '10.206.0.1', 5000, 1000 + i * 100, Buffer.alloc(100, i), bad).toString('hex');
      type S = { txPackets: number; txSuper: number; txDropped: number };
      const stats = (): Promise<S> => child!.call<S>('call', { id: t.id, method: 'stats' });
      const s0 = await stats();
      expect(await child!.call('write', { id: t.id, packets: [seg(0), seg(1), seg(2), seg(3)] })).toBe(4);
      const s1 = await stats();
      expect(s1.txPackets - s0.txPackets).toBe(4);
      expect(s1.txSuper - s0.txSuper).toBe(1);
      // a bad checksum in the middle, then a gap in sequence: nothing to coalesce
      expect(await child!.call('write', { id: t.id, packets: [seg(0), seg(1, true), seg(2)] })).toBe(3);
      expect(await child!.call('write', { id: t.id, packets: [seg(0), seg(2), seg(4)] })).toBe(3);
      const s2 = await stats();
      expect(s2.txPackets - s1.txPackets).toBe(6);
      expect(s2.txSuper - s1.txSuper).toBe(0);
      expect(s2.txDropped).toBe(s0.txDropped);

      // reading: the kernel leaves UDP/TCP checksums to the "hardware"; the addon completes them
      await child!.call('start', { id: t.id });
      const sock = await child!.call<{ id: number; port: number }>('udpBind', { addr: '10.206.0.1' });
      await child!.call('udpSend', { sock: sock.id, addr: '10.206.0.2', port: 7000, payload: hexText('offload-udp-checksum') });
      const got = await child!.call<{ packets: string[] }>('packets', { id: t.id, until: [hexText('offload-udp-checksum')] });
      const raw = Buffer.from(got.packets.find((h) => h.includes(hexText('offload-udp-checksum')))!, 'hex');
      const udp = raw.subarray(20);
      expect(udp.readUInt16BE(6)).not.toBe(0);
      const pseudo = Buffer.concat([raw.subarray(12, 20), Buffer.from([0, 17, udp.length >> 8, udp.length & 255])]);
      expect(csum(udp, 0, udp.length, csum(pseudo))).toBe(0xffff);
    } finally {
      await child!.call('call', { id: t.id, method: 'close' });
    }
  });

  it('refuses bad input with clear errors', async () => {
    const bad = await child!.fails('call', { id: tunId, method: 'addAddress', args: ['10.0.0.300/24'] });
    expect(bad.code).toBe('EINVAL');
    expect(bad.message).toContain("invalid CIDR '10.0.0.300/24'");
    expect((await child!.fails('call', { id: tunId, method: 'addAddress', args: ['10.0.0.1'] })).message).toContain(
      'missing /prefix length',
    );
    expect((await child!.fails('call', { id: tunId, method: 'addAddress', args: ['fd00::1/129'] })).message).toContain(
      'prefix length above 128',
    );
    expect((await child!.fails('call', { id: tunId, method: 'addRoute', args: ['10.9.9.9/8'] })).message).toContain(
      'bits set beyond the /8 prefix',
    );
    expect((await child!.fails('call', { id: tunId, method: 'setMtu', args: [20] })).code).toBe('EINVAL');
    expect((await child!.fails('call', { id: tunId, method: 'addAddress', args: [42] })).name).toBe('TypeError');
    // packets outside the buffer: refused before anything is written
    const range = await child!.fails('writeRaw', { id: tunId, bufLen: 10, offsets: [8], lengths: [20], count: 1 });
    expect(range).toMatchObject({ code: 'EINVAL', name: 'RangeError' });
    expect((await child!.fails('writeRaw', { id: tunId, bufLen: 10, offsets: [0], lengths: [1], count: 2 })).code).toBe(
      'EINVAL',
    );
    // the name is taken by our open device, by a non-TUN device, or is too long
    const busy = await child!.fails('open', { name: devName });
    expect(busy.code).toBe('EBUSY');
    expect(busy.message).toContain(`create TUN device '${devName}'`);
    expect((await child!.fails('open', { name: 'lo' })).code).toMatch(/^(EINVAL|EBUSY|EEXIST)$/);
    expect((await child!.fails('open', { name: 'x'.repeat(16) })).message).toContain('too long');
    expect((await child!.fails('open', { name: 'mwq', batch: 0 })).code).toBe('EINVAL');
  });

  it('survives close() called from inside its own batch callback', async () => {
    const t = await child!.call<{ id: number; name: string }>('open', { name: `mwc${process.pid % 10000}` });
    await child!.call('call', { id: t.id, method: 'setUp', args: [true] });
    await child!.call('call', { id: t.id, method: 'addAddress', args: ['10.207.0.1/24'] });
    const s = await child!.call<{ id: number }>('udpBind', { addr: '10.207.0.1' });
    await child!.call('closeInside', { id: t.id }); // any packet (ours, or the kernel's own IPv6 chatter) closes it
    for (let i = 0; i < 5; i++) await child!.call('udpSend', { sock: s.id, addr: '10.207.0.2', port: 9, payload: '00' }).catch(() => {});
    const deadline = Date.now() + 2000;
    while ((await child!.call<number>('closedInside', { id: t.id })) === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(await child!.call<number>('closedInside', { id: t.id })).toBeGreaterThan(0);
    expect(await child!.call('exists', { name: t.name })).toBe(false);
    expect(await child!.call('exists', { name: 'lo' })).toBe(true); // the child is alive and answering
  });

  it('opens with a kernel-chosen name, and close removes the device; use after close is EBADF', async () => {
    const t = await child!.call<{ id: number; name: string }>('open', { name: '' });
    expect(t.name).toMatch(/^tun\d+$/);
    expect(await child!.call('exists', { name: t.name })).toBe(true);
    await child!.call('start', { id: t.id });
    await child!.call('call', { id: t.id, method: 'close' });
    await child!.call('call', { id: t.id, method: 'close' }); // idempotent
    expect(await child!.call('exists', { name: t.name })).toBe(false);
    const e = await child!.fails('writeOne', { id: t.id, packet: echo4('10.201.0.2', '10.201.0.1', 1, 1).toString('hex') });
    expect(e.code).toBe('EBADF');
    expect(e.message).toContain(`TUN device ${t.name} is closed`);
    expect((await child!.fails('call', { id: t.id, method: 'setUp', args: [true] })).code).toBe('EBADF');
    expect((await child!.fails('start', { id: t.id })).code).toBe('EBADF');
    expect(await child!.call('call', { id: t.id, method: 'stats' })).toMatchObject({ rxPackets: 0 });

    await child!.call('call', { id: tunId, method: 'close' });
    expect(await child!.call('exists', { name: devName })).toBe(false);
  });

  it('without CAP_NET_ADMIN, open fails with EPERM', () => {
    const code = `import(${JSON.stringify(distIndex)}).then((m) => { try { m.Tun.open('mwp${process.pid % 10000}'); console.log('opened'); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); } })`;
    // root without capabilities: an empty bounding set leaves the exec'd process none
    const out = execFileSync(
      'ip',
      ['netns', 'exec', ns, 'setpriv', '--bounding-set=-all', '--inh-caps=-all', process.execPath, '-e', code],
      { encoding: 'utf8' },
    );
    const r = JSON.parse(out.trim()) as { code: string; message: string };
    expect(r.code).toBe('EPERM');
    expect(r.message).toMatch(/create TUN device 'mwp\d+' \(TUNSETIFF\): Operation not permitted/);
  });
});

// TCP through a wire of two TUN devices: one in `ns`, one moved into `ns2`, the child forwarding every batch
// read from one into the other. With offload, the kernel hands over TCP super-packets that the addon cuts
// into segments; any mistake in their headers or checksums would stall or corrupt the stream.
describe.skipIf(!canRun)('Tun wire between two namespaces (TCP end to end)', () => {
  const tcpServer = `
    import net from 'node:net'; import { createHash } from 'node:crypto';
    const srv = net.createServer((c) => {
      const h = createHash('sha256'); let n = 0;
      c.on('data', (d) => { h.update(d); n += d.length; });
      c.on('end', () => { console.log(JSON.stringify({ n, sha: h.digest('hex') })); c.end(); srv.close(); });
    });
    srv.listen(Number(process.argv[2]), process.argv[1], () => console.log('listening'));`;
  const tcpClient = `
    import net from 'node:net'; import { createHash, randomBytes } from 'node:crypto';
    const total = Number(process.argv[3]) << 20, h = createHash('sha256'); let sent = 0;
    const c = net.connect(Number(process.argv[2]), process.argv[1], () => {
      const pump = () => {
        while (sent < total) {
          const chunk = randomBytes(1 << 16); h.update(chunk); sent += chunk.length;
          if (!c.write(chunk)) return void c.once('drain', pump);
        }
        c.end();
      };
      pump();
    });
    c.on('data', () => {});
    c.on('close', () => console.log(JSON.stringify({ n: sent, sha: h.digest('hex') })));`;

  beforeAll(() => {
    execFileSync('ip', ['netns', 'add', ns2]);
    execFileSync('ip', ['-n', ns2, 'link', 'set', 'lo', 'up']);
  });

  const cases = [
    { offload: false, v6: false, tag: 'p', a: '10.204.0.1/24', b: '10.204.0.2/24' },
    { offload: true, v6: false, tag: 'o', a: '10.205.0.1/24', b: '10.205.0.2/24' },
    { offload: true, v6: true, tag: 's', a: 'fd05:205::1/64', b: 'fd05:205::2/64' },
  ];
  for (const { offload, v6, tag, a: addrA, b: addrB } of cases) {
    it(`carries 20 MB of TCP intact (IPv${v6 ? 6 : 4}, offload ${offload ? 'on' : 'off'})`, async () => {
      const nameA = `mwa${tag}${process.pid % 10000}`;
      const nameB = `mwb${tag}${process.pid % 10000}`;
      const far = addrB.split('/')[0]!;
      const a = await child!.call<{ id: number; offload: boolean }>('open', { name: nameA, mtu: 1420, offload });
      const b = await child!.call<{ id: number; offload: boolean }>('open', { name: nameB, mtu: 1420, offload });
      expect([a.offload, b.offload]).toEqual([offload, offload]);
      let server: ChildProcess | undefined;
      try {
        await child!.call('call', { id: a.id, method: 'setUp', args: [true] });
        await child!.call('call', { id: a.id, method: 'addAddress', args: [addrA] });
        execFileSync('ip', ['-n', ns, 'link', 'set', nameB, 'netns', ns2]);
        execFileSync('ip', ['-n', ns2, 'addr', 'add', addrB, 'dev', nameB, ...(v6 ? ['nodad'] : [])]);
        execFileSync('ip', ['-n', ns2, 'link', 'set', nameB, 'up']);
        await child!.call('wire', { a: a.id, b: b.id });

        server = spawn('ip', ['netns', 'exec', ns2, process.execPath, '--input-type=module', '-e', tcpServer, far, '5201']);
        let serverOut = '';
        server.stdout!.on('data', (d: Buffer) => (serverOut += d.toString()));
        const serverDone = new Promise<void>((r) => server!.on('exit', () => r()));
        const deadline = Date.now() + 5000;
        while (!serverOut.includes('listening') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        const clientOut = await new Promise<string>((resolve, reject) =>
          execFile(
            'ip',
            ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', tcpClient, far, '5201', '20'],
            { timeout: 20_000 },
            (err, out) => (err ? reject(err) : resolve(out)),
          ),
        );
        await Promise.race([serverDone, new Promise((r) => setTimeout(r, 5000))]);
        const sent = JSON.parse(clientOut.trim()) as { n: number; sha: string };
        const got = JSON.parse(serverOut.replace('listening', '').trim()) as { n: number; sha: string };
        expect(sent.n).toBe(20 << 20);
        expect(got).toEqual(sent);
        const stats = await child!.call<{ rxPackets: number; rxSuper: number; rxDropped: number }>('call', {
          id: a.id,
          method: 'stats',
        });
        expect(stats.rxPackets).toBeGreaterThan((20 << 20) / 1420);
        expect(stats.rxDropped).toBe(0);
        const statsB = await child!.call<{ txPackets: number; txSuper: number }>('call', { id: b.id, method: 'stats' });
        if (offload) {
          expect(stats.rxSuper).toBeGreaterThan(0); // super-packets read from A, cut into segments
          expect(statsB.txSuper).toBeGreaterThan(0); // segments written to B, coalesced again
        } else {
          expect(stats.rxSuper).toBe(0);
          expect(statsB.txSuper).toBe(0);
        }
      } finally {
        server?.kill('SIGKILL');
        await child!.call('call', { id: a.id, method: 'close' });
        await child!.call('call', { id: b.id, method: 'close' });
      }
    });
  }
});

function echoReplyMarker(seq: number): string {
  // type 0 code 0, checksum unknown, id 0x4d57, seq: match on the id+seq bytes
  return `4d57${seq.toString(16).padStart(4, '0')}6d657368`;
}
