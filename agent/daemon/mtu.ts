// The data path's default MTU, in a module of its own so the command line can name it without loading the engine.
/**
 * Tailscale's choice: 1280 (IPv6's minimum) plus 80 bytes of WireGuard, UDP and IP headers fits any
 * underlay, including cloud networks below 1500 and tunnels. On a known 1500-byte network,
 * `agent daemon --mtu 1420` (WireGuard's usual value) sends fewer, larger packets.
 */
export const DEFAULT_MTU = 1280;
