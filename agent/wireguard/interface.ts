// A WireGuard interface on a real TUN device and UDP socket (the native addon), configured over
// UAPI: what `agent wireguard IFACE` runs, and what the agent daemon can build on.
import { Tun, UdpSocket, type NativeError } from '../../native/index.js';
import { Device, type DeviceOptions } from './device.js';
import { UapiServer, socketPath } from './uapi.js';

export interface InterfaceOptions {
  mtu?: number;
  /** UDP port to listen on (default 0: the kernel picks one); `device.port` says which one is in use. */
  listenPort?: number;
  /**
   * If listenPort is taken (EADDRINUSE), listen on a port the kernel picks instead of failing. Default
   * false: create() rejects with the EADDRINUSE error and leaves nothing behind.
   */
  anyPortIfTaken?: boolean;
  /** UAPI socket path; default /var/run/wireguard/NAME.sock; null for none. */
  uapiPath?: string | null;
  log?: (msg: string) => void;
  /** The TUN device failed (e.g. it was deleted): the interface no longer works. */
  onTunError?: (err: NativeError) => void;
  /** TCP segmentation offload on the TUN (fewer reads; the addon cuts super-packets). Default true. */
  tunOffload?: boolean;
  /** Handshakes per second above which cookies are demanded (DeviceOptions.underLoadThreshold). */
  underLoadThreshold?: number;
  beforeEncrypt?: DeviceOptions['beforeEncrypt'];
  afterDecrypt?: DeviceOptions['afterDecrypt'];
  /** SO_MARK on the UDP socket (WireGuard's fwmark; 0: none). The agent's policy routing keys on it. */
  fwmark?: number;
}

// Socket buffers (the kernel doubles them for its bookkeeping). A small datagram takes about 1 KiB of
// buffer, so 16 MiB holds a burst of some 16,000 (say a flood of handshake initiations) while the
// event loop is busy, instead of losing legitimate packets that arrive with it. Beyond the sysctl
// limits only with CAP_NET_ADMIN (which the agent has); otherwise the kernel caps them silently.
const RECEIVE_BUFFER = 16 << 20;
const SEND_BUFFER = 4 << 20;

export class WireGuardInterface {
  private closed = false;
  private mtuPoll: NodeJS.Timeout | null = null;

  private constructor(
    readonly name: string,
    readonly device: Device,
    readonly tun: Tun,
    private readonly uapi: UapiServer | null,
  ) {}

  /** Creates the TUN device `name`, a Device on it, and the UAPI socket. Needs CAP_NET_ADMIN. */
  static async create(name: string, opts: InterfaceOptions = {}): Promise<WireGuardInterface> {
    const log = opts.log ?? (() => {});
    const mtu = opts.mtu ?? 1420;
    const tun = Tun.open(name, { mtu, batch: 128, offload: opts.tunOffload ?? true });
    let device: Device | null = null;
    try {
      const onError = (what: string) => (err: NativeError) => log(`${what} error: ${err.code} ${err.message}`);
      device = new Device({
        tun,
        mtu,
        batch: 128,
        log,
        underLoadThreshold: opts.underLoadThreshold,
        beforeEncrypt: opts.beforeEncrypt,
        afterDecrypt: opts.afterDecrypt,
        bindUdp: (port, onBatch) => {
          const sock = UdpSocket.bind(port, '', { batch: 128, rcvbuf: RECEIVE_BUFFER, sndbuf: SEND_BUFFER });
          try {
            if (device!.fwmark !== 0) sock.setMark(device!.fwmark);
          } catch (err) {
            sock.close();
            throw err;
          }
          sock.start(onBatch, onError('udp'));
          return sock;
        },
      });
      device.fwmark = opts.fwmark ?? 0;
      device.setListenPort(opts.listenPort ?? 0);
      try {
        device.up();
      } catch (err) {
        if (!opts.anyPortIfTaken || (err as NativeError).code !== 'EADDRINUSE' || !opts.listenPort) throw err;
        log(`UDP port ${opts.listenPort} is taken; listening on a port the kernel picks`);
        device.setListenPort(0);
        device.up();
      }
      tun.start(device.onTunBatch, (err) => {
        onError('tun')(err);
        opts.onTunError?.(err);
      });
      const path = opts.uapiPath === undefined ? socketPath(tun.name) : opts.uapiPath;
      const uapi = path === null ? null : await UapiServer.listen(device, path, log);
      const wgi = new WireGuardInterface(tun.name, device, tun, uapi);
      // `ip link set mtu` may change the MTU at any time; padding follows it.
      wgi.mtuPoll = setInterval(() => {
        try {
          device!.setMtu(tun.mtu);
        } catch {
          // device closing
        }
      }, 2000).unref();
      return wgi;
    } catch (err) {
      device?.close();
      tun.close();
      throw err;
    }
  }

  /** Removes the UAPI socket and the device. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.mtuPoll) clearInterval(this.mtuPoll);
    await this.uapi?.close();
    this.device.close();
    this.tun.close();
  }
}
