// `agent daemon`: the long-running node agent that systemd starts (systemd/agent.service).
// The daemon's modules (the data path, pino, prom-client, …) load only when it runs: every other
// command shares this program, and `agent up` should not pay for them.
import { parseFlags, UsageError, type Command } from '../../wire/cli.js';
import { DEFAULT_SOCKET } from '../cli/args.js';
import { DEFAULT_STATE_DIR } from '../state.js';
import { DEFAULT_MTU } from './mtu.js';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const IFNAME = /^[A-Za-z0-9_=+.-]{1,15}$/;

export interface DaemonArgs {
  stateDir: string;
  socket: string;
  tun: string;
  port: number;
  mtu: number;
  logLevel: string;
  /** Serve the metrics at http://HOST:PORT/metrics too (absent: only on the local API). */
  metricsListen?: { host: string; port: number };
}

export function parseDaemonArgs(argv: string[]): DaemonArgs {
  const { values } = parseFlags(argv, {
    'state-dir': { type: 'string' },
    socket: { type: 'string' },
    tun: { type: 'string' },
    port: { type: 'string' },
    mtu: { type: 'string' },
    'log-level': { type: 'string' },
    'metrics-listen': { type: 'string' },
  });
  const logLevel = values['log-level'] ?? 'info';
  if (!LEVELS.includes(logLevel)) throw new UsageError(`--log-level must be one of ${LEVELS.join(', ')}, not ${JSON.stringify(logLevel)}`);
  const tun = values.tun ?? 'mw0';
  if (!IFNAME.test(tun)) throw new UsageError(`invalid --tun ${JSON.stringify(tun)}: 1 to 15 letters, digits or _=+.-`);
  const portText = values.port ?? '41641';
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) throw new UsageError(`invalid --port ${JSON.stringify(portText)}: a UDP port 0-65535 (0: any)`);
  const mtuText = values.mtu ?? String(DEFAULT_MTU);
  const mtu = Number(mtuText);
  if (!/^\d+$/.test(mtuText) || mtu < 1280 || mtu > 9000) throw new UsageError(`invalid --mtu ${JSON.stringify(mtuText)}: 1280 to 9000 bytes`);
  let metricsListen: DaemonArgs['metricsListen'];
  if (values['metrics-listen'] !== undefined) {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(values['metrics-listen']);
    if (!m || Number(m[3]) > 65535) throw new UsageError(`invalid --metrics-listen ${JSON.stringify(values['metrics-listen'])}: HOST:PORT, e.g. 127.0.0.1:9181`);
    metricsListen = { host: m[1] ?? m[2]!, port: Number(m[3]) };
  }
  return { stateDir: values['state-dir'] ?? DEFAULT_STATE_DIR, socket: values.socket ?? DEFAULT_SOCKET, tun, port, mtu, logLevel, ...(metricsListen ? { metricsListen } : {}) };
}

export const daemonCommand: Command = {
  usage: 'daemon [--state-dir DIR] [--socket PATH] [--tun NAME] [--port N] [--mtu N] [--metrics-listen 127.0.0.1:9181] [--log-level LEVEL]',
  summary: 'run the node agent (systemd runs this; the other commands talk to it)',
  async run(argv) {
    const args = parseDaemonArgs(argv);
    const [{ pino }, { Daemon }, { serveMetrics }] = await Promise.all([import('pino'), import('./daemon.js'), import('../../wire/metrics-http.js')]);
    // Secrets never reach the log, even by a mistake elsewhere: these fields are censored wherever they appear.
    const log = pino({
      level: args.logLevel,
      base: { program: 'agent' },
      redact: { paths: ['authKey', 'authkey', 'privateKey', '*.authKey', '*.authkey', '*.privateKey'], censor: '[redacted]' },
    });
    const daemon = new Daemon({ stateDir: args.stateDir, socket: args.socket, tunName: args.tun, port: args.port, mtu: args.mtu, log });
    let metricsServer: { server: { close(): void } } | null = null;
    try {
      await daemon.start();
      if (args.metricsListen) {
        metricsServer = await serveMetrics(daemon.metrics, args.metricsListen.host, args.metricsListen.port);
        log.info({ metrics: `${args.metricsListen.host}:${args.metricsListen.port}` }, 'metrics listening');
      }
    } catch (err) {
      log.fatal({ err: (err as Error).message }, 'agent daemon could not start');
      await daemon.stop().catch(() => {});
      throw err;
    }
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    log.info({ signal }, 'shutting down');
    metricsServer?.server.close();
    await daemon.stop();
    log.info('stopped');
    return 0;
  },
};
