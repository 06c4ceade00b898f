// The relay's authorizer inside coord: who may connect comes from the store (a registered, authorized,
// unexpired device of an active user), who may send to whom from the netmap hub (the two are peers, the
// same rule as the netmap), so that a compromised device cannot use the relay to reach strangers.
import type { NetmapHub } from '../netmap-stream.js';
import type { Store } from '../store/index.js';
import { isActive } from '../topology.js';
import type { RelayAuthorizer } from './server.js';

export function coordAuthorizer(store: Store, hub: NetmapHub): RelayAuthorizer {
  return {
    mayConnect(key: string): boolean {
      const d = store.getDeviceByNodeKey(key);
      if (!d || !isActive(d)) return false;
      return store.getUser(d.userId)?.status === 'active';
    },
    maySend: (from: string, to: string) => hub.arePeers(from, to),
  };
}
