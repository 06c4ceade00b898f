// WireGuardInterface on a real TUN device and UDP socket, inside a network namespace made by this test
// (a child node process run with `ip netns exec` opens the interface; the assertions are made here).
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeAvailable } from '../../native/index.js';

const ns = `mw-wgif-${process.pid}`;
const dev = `mwif${process.pid % 10000}`;
const distInterface = fileURLToPath(new URL('../../dist/agent/wireguard/interface.js', import.meta.url));
const canRun = nativeAvailable() && process.getuid?.() === 0;

/**
 * Runs `body` in the namespace with `create(opts)` (WireGuardInterface.create on `dev`) and `dgram`
 * in scope; returns what it printed as JSON.
 */
function inNamespace(body: string): unknown {
  const script = `
    import dgram from 'node:dgram';
    import { WireGuardInterface } from ${JSON.stringify(distInterface)};
    const create = (opts) => WireGuardInterface.create(${JSON.stringify(dev)}, { uapiPath: null, ...opts });
    const out = {};
    ${body}
    process.stdout.write(JSON.stringify(out));
    process.exit(0);
  `;
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) throw new Error(`child failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

beforeAll(() => {
  if (!canRun) return;
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
});

afterAll(() => {
  if (canRun) spawnSync('ip', ['netns', 'del', ns]);
});

describe.skipIf(!canRun)('WireGuardInterface (in a network namespace)', () => {
  it('listens on the listenPort asked for, bound once (the port is busy for others)', () => {
    const out = inNamespace(`
      const wg = await create({ listenPort: 51777 });
      out.port = wg.device.port;
      const s = dgram.createSocket('udp4');
      out.bindError = await new Promise((res) => { s.once('error', (e) => res(e.code)); s.bind(51777, () => res(null)); });
      s.close();
      await wg.close();
      // Without listenPort, the kernel picks one.
      const any = await create({});
      out.anyPort = any.device.port;
      await any.close();
    `) as { port: number; bindError: string | null; anyPort: number };
    expect(out.port).toBe(51777);
    expect(out.bindError).toBe('EADDRINUSE');
    expect(out.anyPort).toBeGreaterThan(0);
  });

  it('a taken listenPort fails cleanly (no device left), or with anyPortIfTaken falls back to the kernel’s pick', () => {
    const out = inNamespace(`
      const s = dgram.createSocket('udp4');
      await new Promise((res) => s.bind(51778, res));
      try {
        await create({ listenPort: 51778 });
        out.refused = null;
      } catch (e) {
        out.refused = e.code;
      }
      const { execFileSync } = await import('node:child_process');
      out.links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
      const logs = [];
      const wg = await create({ listenPort: 51778, anyPortIfTaken: true, log: (m) => logs.push(m) });
      out.fallbackPort = wg.device.port;
      out.logs = logs;
      await wg.close();
      s.close();
    `) as { refused: string | null; links: string; fallbackPort: number; logs: string[] };
    expect(out.refused).toBe('EADDRINUSE');
    expect(out.links).not.toContain(dev);
    expect(out.fallbackPort).toBeGreaterThan(0);
    expect(out.fallbackPort).not.toBe(51778);
    expect(out.logs.join('\n')).toContain('UDP port 51778 is taken');
  });
});
