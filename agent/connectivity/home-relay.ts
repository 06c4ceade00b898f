// Which relay is this device's home (where its peers reach it): the one with the lowest measured
// latency, with hysteresis so that two relays at about the same distance do not make it flap (each
// change is a netmap update for every peer, and packets in flight to the old home are lost).
export interface RelayLatency {
  name: string;
  /** Round trip in milliseconds; null when it did not answer. */
  latencyMs: number | null;
}

export interface HomeChoiceOptions {
  /** A new relay must be faster than the current home by this fraction of the home's latency (default 0.3)… */
  relativeGain?: number;
  /** …and by at least this many milliseconds (default 5). */
  absoluteGainMs?: number;
}

/**
 * The home relay given the current one and fresh measurements of the relays in the map (in map order).
 * Keeps `current` while it is in the map and answered, unless another is clearly faster; moves to the
 * fastest when the current one is gone or did not answer. With no answers at all: the current one if it
 * is still in the map, else the map's first relay (coord's own); null for an empty map.
 */
export function chooseHomeRelay(current: string | null, measured: readonly RelayLatency[], o: HomeChoiceOptions = {}): string | null {
  if (measured.length === 0) return null;
  const relativeGain = o.relativeGain ?? 0.3;
  const absoluteGainMs = o.absoluteGainMs ?? 5;
  let best: RelayLatency | null = null;
  for (const r of measured) if (r.latencyMs !== null && (best === null || r.latencyMs < best.latencyMs!)) best = r;
  const home = current === null ? undefined : measured.find((r) => r.name === current);
  if (best === null) return home ? home.name : measured[0]!.name;
  if (!home || home.latencyMs === null) return best.name;
  const gain = home.latencyMs - best.latencyMs!;
  return gain > home.latencyMs * relativeGain && gain >= absoluteGainMs ? best.name : home.name;
}
