// A sliding anti-replay window over 64-bit message counters (the bitmap scheme of RFC 6479):
// a ring of 32-bit blocks; the newest block is never fully "behind", so the window accepts any
// counter within WINDOW_SIZE of the highest seen, exactly once.

const BLOCK_BITS = 32;
const RING_BLOCKS = 128; // power of two
/** Counters this far behind the highest one seen are still accepted once. */
export const WINDOW_SIZE = (RING_BLOCKS - 1) * BLOCK_BITS; // 4064

/** Largest counter this implementation handles exactly (counters are JS numbers). */
export const MAX_COUNTER = Number.MAX_SAFE_INTEGER;

export class ReplayWindow {
  private readonly ring = new Uint32Array(RING_BLOCKS);
  private last = 0;

  reset(): void {
    this.ring.fill(0);
    this.last = 0;
  }

  /** Cheap check before decryption: false if the counter is certainly stale or too large. */
  mayAccept(counter: number, limit: number): boolean {
    if (counter >= limit) return false;
    return counter + WINDOW_SIZE >= this.last;
  }

  /** Marks `counter` as seen; false if it was already seen, is too old, or >= limit. */
  accept(counter: number, limit: number): boolean {
    if (counter >= limit) return false;
    const block = Math.floor(counter / BLOCK_BITS);
    if (counter > this.last) {
      const lastBlock = Math.floor(this.last / BLOCK_BITS);
      let diff = block - lastBlock;
      if (diff > RING_BLOCKS) diff = RING_BLOCKS;
      for (let i = 1; i <= diff; i++) this.ring[(lastBlock + i) & (RING_BLOCKS - 1)] = 0;
      this.last = counter;
    } else if (this.last - counter > WINDOW_SIZE) {
      return false;
    }
    const idx = block & (RING_BLOCKS - 1);
    const bit = 1 << (counter % BLOCK_BITS);
    const old = this.ring[idx];
    if ((old & bit) !== 0) return false;
    this.ring[idx] = old | bit;
    return true;
  }
}
