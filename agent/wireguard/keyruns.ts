// One AEAD call per run of packets under one key: the sealing and the opening of a batch both walk
// their slots this way, so the native call's per-call cost is paid once per run, not per packet.
import type { AeadKey } from '../../native/index.js';

export class KeyRuns {
  // A run that does not start at slot 0 is copied here, because the native call takes whole arrays.
  private readonly offsets: Uint32Array;
  private readonly lengths: Uint32Array;
  private readonly counters: Float64Array;
  private readonly ok: Uint8Array;

  constructor(batch: number) {
    this.offsets = new Uint32Array(batch);
    this.lengths = new Uint32Array(batch);
    this.counters = new Float64Array(batch);
    this.ok = new Uint8Array(batch);
  }

  /**
   * Applies keys[i] to buf[offsets[i] .. +lengths[i]) with nonce counters[i] for slots 0..n-1, in
   * place: seals when `ok` is null, else opens and sets ok[i] to 1 for each authentic slot, 0 otherwise.
   * Clears keys[0..n-1] afterwards so no key outlives its batch.
   */
  apply(
    buf: Buffer,
    keys: Array<AeadKey | null>,
    offsets: Uint32Array,
    lengths: Uint32Array,
    counters: Float64Array,
    n: number,
    ok: Uint8Array | null,
  ): void {
    let s = 0;
    while (s < n) {
      const key = keys[s]!;
      let e = s + 1;
      while (e < n && keys[e] === key) e++;
      if (s === 0) {
        if (ok === null) key.seal(buf, offsets, lengths, counters, e);
        else key.open(buf, offsets, lengths, counters, e, ok);
      } else {
        for (let i = s; i < e; i++) {
          this.offsets[i - s] = offsets[i];
          this.lengths[i - s] = lengths[i];
          this.counters[i - s] = counters[i];
        }
        if (ok === null) {
          key.seal(buf, this.offsets, this.lengths, this.counters, e - s);
        } else {
          key.open(buf, this.offsets, this.lengths, this.counters, e - s, this.ok);
          for (let i = s; i < e; i++) ok[i] = this.ok[i - s];
        }
      }
      s = e;
    }
    for (let i = 0; i < n; i++) keys[i] = null;
  }
}
