// WireGuard in userspace: the protocol (Noise_IKpsk2, cookies, timers), the device data path,
// UAPI, and the `agent wireguard` command.
//
// For the agent daemon:
//   const wg = await WireGuardInterface.create('meshward0', { uapiPath: null, listenPort: 41641, afterDecrypt, beforeEncrypt });
//   wg.tun.addAddress('100.64.0.5/32'); wg.tun.addRoute('100.64.0.0/10'); wg.tun.setUp(true);
//   wg.tun.removeAddress('100.64.0.5/32'); // addresses change in place
//   wg.device.setPrivateKey(raw32);
//   wg.device.setPeer(pub32, { endpoint: '198.51.100.7:41641', allowedIPs: ['100.64.0.9/32'], replaceAllowedIPs: true });
//   wg.device.peerStatus(peer) → tx/rx bytes, last handshake; wg.device.drops → drop counters by reason.
// The hooks run per packet with (buf, offset, length, peer) and return false to drop; they may be
// swapped at any time by assigning wg.device.beforeEncrypt / afterDecrypt.
export { Device, DropCounters, HandshakeCounters, Peer } from './device.js';
export type { DeviceOptions, PacketHook, PeerConfig, PeerStatus, TunLike, UdpLike, UdpBatchHandler } from './device.js';
export { PrivateKey, PublicKey } from './crypto.js';
export { FakeClock, systemClock, type Clock } from './clock.js';
export { UapiServer, uapiGet, uapiSet, socketPath, SOCKET_DIR } from './uapi.js';
export { WireGuardInterface, type InterfaceOptions } from './interface.js';
export { wireguardCommand } from './command.js';
/** An in-memory network and TUN for testing devices against each other. */
export { MemNetwork, MemTun, ipv4Packet } from './memnet.js';
