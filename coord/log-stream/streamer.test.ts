// The streamer's batching, backoff and backlog bound, on a real store in memory with an injected clock:
// time moves only when the test says, and each request is answered by the test (the network is not here).
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { OutboundAnswer } from '../outbound-http.js';
import { Store } from '../store/index.js';
import { DEFAULT_LIMITS, LogStreamer, type Clock, type StreamLimits } from './streamer.js';

class FakeClock implements Clock {
  t = 1_000_000;
  private timers: { at: number; seq: number; fn: () => void }[] = [];
  private seq = 0;

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.t + ms, seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((x) => x !== timer);
    };
  }

  /** Moves time forward by `ms`, firing every timer that comes due (in order), letting each run settle. */
  async advance(ms: number, settle: () => Promise<void>): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = end;
    await settle();
  }
}

interface Sent {
  at: number;
  ok: boolean;
  body: string;
  headers: Record<string, string>;
}

describe('log streamer', () => {
  let store: Store;
  let clock: FakeClock;
  let streamer: LogStreamer;
  let tailnetId: number;
  const sent: Sent[] = [];
  /** The answer to the next requests: a status, or an Error for a network failure. */
  let answer: number | Error = 200;

  const limits: StreamLimits = { ...DEFAULT_LIMITS, batchEntries: 4, flushMs: 5_000, retryBaseMs: 1_000, retryMaxMs: 8_000, backlogEntries: 6, backlogBytes: 1_000_000, pollMs: 60_000 };

  const make = (l: StreamLimits) => {
    streamer = new LogStreamer(store, async (_url, body, headers): Promise<OutboundAnswer> => {
      sent.push({ at: clock.now(), ok: answer === 200, body: String(body), headers });
      if (answer instanceof Error) throw answer;
      return { status: answer, headers: {}, body: '' };
    }, pino({ level: 'silent' }), l, clock, () => 0.5);
    store.onAudit = (id) => streamer.notify(id);
  };

  const settle = async () => {
    for (let i = 0; i < 5; i++) {
      await streamer.idle();
      await new Promise((r) => setImmediate(r));
    }
  };
  const advance = (ms: number) => clock.advance(ms, settle);
  const change = (n: number) => store.addAudit(tailnetId, { type: 'CONFIG', origin: 'CONFIG_API', actor: { id: 'u1', type: 'USER' }, target: { id: String(n), name: `change ${n}`, type: 'TAILNET' }, action: 'UPDATE', new: n });
  /** The changes (`new` of each entry) in a Splunk HEC body. */
  const changesIn = (s: Sent) => s.body.trim().split('\n').map((l) => JSON.parse(l).event.new as number);
  const stream = () => store.getLogStream(tailnetId, 'configuration')!;

  beforeEach(() => {
    store = new Store(':memory:');
    clock = new FakeClock();
    sent.length = 0;
    answer = 200;
    tailnetId = store.createTailnet('example.com', 'alice@example.com', '{}', 'e').tailnet.id;
    change(0); // before the stream: never sent
    make(limits);
    store.setLogStream(tailnetId, 'configuration', { destinationType: 'splunk', url: 'https://siem.example/services/collector/event', user: '', token: 'tok', compression: 'none' });
    streamer.start();
  });
  afterEach(async () => {
    await streamer.close();
    store.close();
  });

  it('holds entries for flushMs so that they leave together, with the token', async () => {
    change(1);
    await advance(2_000);
    change(2);
    change(3);
    await advance(2_999);
    expect(sent).toEqual([]);
    await advance(1);
    expect(sent.length).toBe(1);
    expect(changesIn(sent[0]!)).toEqual([1, 2, 3]);
    expect(sent[0]!.headers.authorization).toBe('Splunk tok');
    expect(stream().entriesSent).toBe(3);
    expect(stream().requests).toBe(1);
    expect(stream().bytesSent).toBe(Buffer.byteLength(sent[0]!.body));
    expect(store.logStreamBacklog(stream()).entries).toBe(0);
  });

  it('sends a full batch at once, and what waited with it right after', async () => {
    for (let i = 1; i <= 3; i++) change(i);
    await advance(1_000);
    expect(sent).toEqual([]);
    for (let i = 4; i <= 6; i++) change(i);
    await advance(0);
    expect(sent.map(changesIn)).toEqual([[1, 2, 3, 4], [5, 6]]);
    change(7);
    await advance(4_999);
    expect(sent.length).toBe(2);
    await advance(1);
    expect(sent.map(changesIn)).toEqual([[1, 2, 3, 4], [5, 6], [7]]);
  });

  it('keeps a batch within maxBodyBytes (at least one entry per request)', async () => {
    await streamer.close();
    make({ ...limits, maxBodyBytes: 300 });
    streamer.start();
    change(1);
    change(2);
    change(3);
    await advance(5_000);
    expect(sent.length).toBeGreaterThan(1);
    expect(sent.flatMap(changesIn)).toEqual([1, 2, 3]);
    for (const s of sent) expect(changesIn(s).length === 1 || Buffer.byteLength(s.body) <= 300).toBe(true);
  });

  it('retries with exponential backoff up to retryMaxMs, then delivers everything once, in order', async () => {
    answer = new Error('connect ECONNREFUSED 127.0.0.1:9');
    change(1);
    await advance(5_000);
    expect(sent.length).toBe(1);
    // 1 s, 2 s, 4 s, 8 s, 8 s (the cap), with the jitter at its middle
    for (const wait of [1_000, 2_000, 4_000, 8_000, 8_000]) {
      const before = sent.length;
      await advance(wait - 1);
      expect(sent.length).toBe(before);
      change(100 + before); // new entries do not cut the backoff short
      await advance(1);
      expect(sent.length).toBe(before + 1);
    }
    expect(stream().failedRequests).toBe(6);
    expect(stream().lastError).toMatch(/ECONNREFUSED/);
    expect(store.logStreamBacklog(stream()).entries).toBe(6);

    answer = 500;
    await advance(8_000);
    expect(stream().lastError).toMatch(/destination answered 500/);
    answer = 200;
    await advance(8_000);
    expect(sent.filter((s) => s.ok).map(changesIn)).toEqual([[1, 101, 102, 103], [104, 105]]);
    expect(stream().entriesSent).toBe(6);
    expect(store.logStreamBacklog(stream()).entries).toBe(0);
    // back to normal: the next entry waits flushMs, not a backoff
    change(7);
    await advance(5_000);
    expect(changesIn(sent.at(-1)!)).toEqual([7]);
  });

  it('bounds the backlog: the oldest entries beyond it are dropped, counted and reported', async () => {
    answer = 503;
    for (let i = 1; i <= 3; i++) change(i);
    await advance(5_000);
    for (let i = 4; i <= 10; i++) change(i);
    await advance(1_000); // the retry trims first: 10 waiting, 6 kept
    expect(stream().droppedEntries).toBe(4);
    expect(stream().lastError).toMatch(/dropped the 4 oldest entries/);
    expect(store.logStreamBacklog(stream()).entries).toBe(6);
    answer = 200;
    await advance(2_000);
    await advance(5_000);
    expect(sent.filter((s) => s.ok).flatMap(changesIn)).toEqual([5, 6, 7, 8, 9, 10]);
    const status = streamer.status(stream());
    expect(status.numDroppedEntries).toBe(4);
    expect(status.numEntriesSent).toBe(6);
    expect(status.numPendingEntries).toBe(0);
  });

  it('bounds the backlog in bytes as stored', async () => {
    await streamer.close();
    make({ ...limits, backlogEntries: 1000, backlogBytes: 700 });
    streamer.start();
    answer = 503;
    for (let i = 1; i <= 8; i++) change(i);
    await advance(5_000);
    await advance(1_000);
    const kept = store.logStreamBacklog(stream());
    expect(kept.bytes).toBeLessThanOrEqual(700);
    expect(kept.entries + stream().droppedEntries).toBe(8);
    expect(stream().droppedEntries).toBeGreaterThan(0);
  });

  it('a new streamer on the same store (a restart) sends what was left, once', async () => {
    answer = 500;
    change(1);
    change(2);
    await advance(5_000);
    await streamer.close();
    answer = 200;
    make(limits);
    streamer.start();
    await advance(5_000);
    expect(sent.filter((s) => s.ok).flatMap(changesIn)).toEqual([1, 2]);
    await advance(60_000);
    expect(sent.filter((s) => s.ok).flatMap(changesIn)).toEqual([1, 2]);
  });
});
