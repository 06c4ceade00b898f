// `agent wireguard [-f] IFACE`: a plain userspace WireGuard interface, a drop-in for
// `wireguard-go IFACE`. Like wireguard-go it detaches into the background once the interface and
// its UAPI socket exist, unless -f/--foreground or WG_PROCESS_FOREGROUND=1 keeps it in front.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { UsageError, parseFlags, type Command } from '../../wire/cli.js';
import { socketPath } from './uapi.js';

const IFNAME = /^[A-Za-z0-9_=+.-]{1,15}$/;

function logLine(msg: string): void {
  process.stderr.write(`${new Date().toISOString()} ${msg}\n`);
}

async function runForeground(name: string): Promise<number> {
  let onTunError: (() => void) | null = null;
  // MESHWARD_WG_OFFLOAD=0 turns TUN segmentation offload off (for comparisons and odd kernels);
  // MESHWARD_WG_UNDER_LOAD=N demands cookies above N handshakes/s (0: always, to test the cookie path).
  const underLoad = process.env.MESHWARD_WG_UNDER_LOAD;
  const { WireGuardInterface } = await import('./interface.js'); // the data path loads only when it runs
  const iface = await WireGuardInterface.create(name, {
    log: logLine,
    onTunError: () => onTunError?.(),
    tunOffload: process.env.MESHWARD_WG_OFFLOAD !== '0',
    underLoadThreshold: underLoad !== undefined && /^\d+$/.test(underLoad) ? Number(underLoad) : undefined,
  });
  logLine(`interface ${iface.name} is up; UAPI socket ${socketPath(iface.name)} (configure it with wg and ip)`);
  return new Promise<number>((resolve) => {
    const stop = (sig: string, code = 0) => {
      const drops = Object.entries(iface.device.drops).filter(([, n]) => n > 0);
      logLine(`${sig}: removing interface ${iface.name}; dropped packets: ${drops.map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`);
      iface.close().then(
        () => resolve(code),
        () => resolve(1),
      );
    };
    // Like wireguard-go: when the TUN device goes away (ip link del), the interface process ends.
    onTunError = () => stop('TUN device gone', 1);
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

/** Starts a detached copy in the foreground mode and waits until its socket appears. */
async function runBackground(name: string): Promise<number> {
  const script = process.argv[1];
  const child = spawn(process.execPath, [...process.execArgv, script, 'wireguard', '--foreground', name], {
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, WG_PROCESS_FOREGROUND: '1' },
  });
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? 1));
  const path = socketPath(name);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (exited !== null) {
      process.stderr.write(`agent wireguard: the interface failed to start (exit ${exited}); run with --foreground to see why\n`);
      return 1;
    }
    if (existsSync(path)) {
      child.unref();
      return 0;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGTERM');
  process.stderr.write('agent wireguard: the interface did not come up within 10 s\n');
  return 1;
}

export const wireguardCommand: Command = {
  usage: 'wireguard [-f|--foreground] IFACE',
  summary: 'run a plain userspace WireGuard interface configured with wg (like wireguard-go)',
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { foreground: { type: 'boolean', short: 'f' } }, 1);
    const name = positionals[0];
    if (!name) throw new UsageError('missing interface name, e.g. `agent wireguard wg0`');
    if (!IFNAME.test(name)) throw new UsageError(`invalid interface name ${JSON.stringify(name)} (1-15 letters, digits, _=+.-)`);
    const foreground = values.foreground === true || process.env.WG_PROCESS_FOREGROUND === '1';
    return foreground ? runForeground(name) : runBackground(name);
  },
};
