// Log streaming against the real server: the configuration log delivered to an HTTP receiver this test
// runs on loopback (coord allows private targets here), through the receiver's outage (connection
// refused, then 500s) and recovery, across a restart of coord, within the backlog's bound; who may
// configure it, and what a bad configuration is told.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promtoolProblems, sample } from '../prometheus.js';
import { AdminApiError, AdminClient } from '../../coord/client/index.js';
import { addUser, api, Coord } from './harness.js';

/** An HTTP receiver on a fixed loopback port that can go away and come back. */
class Receiver {
  /** Requests answered 2xx: headers and body (gunzipped when sent gzipped). */
  readonly delivered: { headers: IncomingHttpHeaders; body: string }[] = [];
  refused = 0;
  /** What it answers while up. */
  status = 200;
  port = 0;
  private server: Server | undefined;

  async up(): Promise<void> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (this.status !== 200) {
          this.refused++;
          res.writeHead(this.status).end('{"text":"not now"}');
          return;
        }
        const raw = Buffer.concat(chunks);
        const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw).toString() : raw.toString();
        this.delivered.push({ headers: req.headers, body });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"text":"Success","code":0}');
      });
    });
    await new Promise<void>((r) => server.listen(this.port, '127.0.0.1', r));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Gone: connections are refused until `up` again. */
  async down(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/services/collector/event`;
  }

  /** Every streamed event received (Splunk HEC lines), in arrival order. */
  events(): any[] {
    return this.delivered.flatMap((d) => d.body.trim().split('\n').map((l) => JSON.parse(l).event));
  }
}

const FAST = ['--allow-private-webhooks', '--log-stream-flush', '1s', '--log-stream-retry-max', '1s'];
const POLL = { timeout: 20_000, interval: 100 };

describe('log streaming', () => {
  const coord = new Coord();
  const receiver = new Receiver();
  let owner: ReturnType<typeof api>;
  let ownerKey = '';
  let n = 0;
  /** A configuration change: one audit entry, named by its search path. */
  const change = async () => {
    const name = `c${++n}.example.com`;
    expect((await owner.post('/tailnet/-/dns/searchpaths', { searchPaths: [name] })).status).toBe(200);
    return name;
  };
  const status = async () => (await owner.get('/tailnet/-/logging/configuration/stream/status')).body;
  const auditIds = async () => ((await owner.get('/tailnet/-/logging/configuration')).body.logs as any[]).map((l) => l.eventGroupID as string);

  beforeAll(async () => {
    await receiver.up();
    await coord.start(FAST);
    ownerKey = coord.createTailnet('example.com', 'alice@example.com');
    owner = api(coord.url, ownerKey);
  }, 60_000);
  afterAll(async () => {
    await coord.cleanup();
    await receiver.down();
  });

  it('delivers new entries batched, with the token, which no answer shows', async () => {
    const before = await auditIds();
    const put = await owner.call('PUT', '/tailnet/-/logging/configuration/stream', { destinationType: 'splunk', url: receiver.url, token: 'hec-secret-token' });
    expect(put.status).toBe(200);
    expect(put.body).toEqual({ logType: 'configuration', destinationType: 'splunk', url: receiver.url, user: '', compressionFormat: 'none' });
    // the stream's own creation is its first entry
    await expect.poll(() => receiver.events().length, POLL).toBe(1);
    expect(receiver.events()[0].target.property).toBe('LOGSTREAM_ENDPOINT');
    expect(receiver.events()[0].action).toBe('CREATE');
    expect(before).not.toContain(receiver.events()[0].eventGroupID);

    const names = [await change(), await change(), await change()];
    await expect.poll(() => receiver.events().length, POLL).toBe(4);
    // three changes within the flush interval: one request
    expect(receiver.delivered.length).toBe(2);
    expect(receiver.events().slice(1).map((e) => e.new[0])).toEqual(names);
    for (const d of receiver.delivered) expect(d.headers.authorization).toBe('Splunk hec-secret-token');

    const get = await owner.get('/tailnet/-/logging/configuration/stream');
    expect(get.body.destinationType).toBe('splunk');
    expect(get.text).not.toContain('hec-secret-token');
    const s = await status();
    expect(s).toMatchObject({ numEntriesSent: 4, numTotalRequests: 2, numFailedRequests: 0, lastError: '', numPendingEntries: 0 });
    expect(s.numBytesSent).toBe(receiver.delivered.reduce((sum, d) => sum + Buffer.byteLength(d.body), 0));
    expect(Date.parse(s.lastActivity)).toBeGreaterThan(Date.now() - 60_000);
    expect(JSON.stringify((await owner.get('/tailnet/-/logging/configuration')).body)).not.toContain('hec-secret-token');
    expect(coord.stdout + coord.stderr).not.toContain('hec-secret-token');
  });

  it('a change without the token keeps it; gzip when asked', async () => {
    const put = await owner.call('PUT', '/tailnet/-/logging/configuration/stream', { destinationType: 'splunk', url: receiver.url, compressionFormat: 'gzip' });
    expect(put.status).toBe(200);
    const had = receiver.delivered.length;
    await change();
    await expect.poll(() => receiver.delivered.length, POLL).toBeGreaterThan(had);
    const last = receiver.delivered.at(-1)!;
    expect(last.headers['content-encoding']).toBe('gzip');
    expect(last.headers.authorization).toBe('Splunk hec-secret-token');
    expect(receiver.events().at(-1).action).toBe('UPDATE'); // the change's entry, after the stream's UPDATE entry
    await expect.poll(async () => (await status()).numPendingEntries, POLL).toBe(0);
  });

  it('through an outage (refused, then 500s): the status shows the error and the retries; afterwards everything arrives once, in order', async () => {
    const sentBefore = receiver.events().length;
    await receiver.down();
    const names = [await change(), await change()];
    await expect.poll(async () => (await status()).numFailedRequests, POLL).toBeGreaterThanOrEqual(2);
    const refused = await status();
    expect(refused.lastError).toMatch(/ECONNREFUSED/);
    expect(refused.numPendingEntries).toBe(2);

    receiver.status = 500;
    await receiver.up();
    names.push(await change());
    await expect.poll(() => receiver.refused, POLL).toBeGreaterThanOrEqual(2);
    expect((await status()).lastError).toMatch(/destination answered 500/);
    expect(receiver.events().length).toBe(sentBefore);

    receiver.status = 200;
    await expect.poll(async () => (await status()).numPendingEntries, POLL).toBe(0);
    const after = receiver.events().slice(sentBefore);
    expect(after.map((e) => e.new[0])).toEqual(names);
    const ids = receiver.events().map((e) => Number(e.eventGroupID));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    const s = await status();
    expect(s.numFailedRequests).toBeGreaterThanOrEqual(4);
    expect(s.numDroppedEntries).toBe(0);
  });

  it('entries pending when coord stops arrive after it starts again', async () => {
    const sentBefore = receiver.events().length;
    receiver.status = 503;
    const names = [await change(), await change()];
    await expect.poll(() => receiver.refused, POLL).toBeGreaterThan(0);
    await coord.stop();
    receiver.status = 200;
    await coord.start(FAST);
    owner = api(coord.url, ownerKey);
    await expect.poll(() => receiver.events().length, POLL).toBe(sentBefore + 2);
    expect(receiver.events().slice(sentBefore).map((e) => e.new[0])).toEqual(names);
    const ids = receiver.events().map((e) => Number(e.eventGroupID));
    expect(new Set(ids).size).toBe(ids.length);
    // and the stream keeps its counts across the restart
    expect((await status()).numEntriesSent).toBe(receiver.events().length);
  });

  it('stopping the stream: audit-logged, the status is gone', async () => {
    expect((await owner.del('/tailnet/-/logging/configuration/stream')).status).toBe(200);
    expect((await owner.get('/tailnet/-/logging/configuration/stream')).status).toBe(404);
    expect((await owner.get('/tailnet/-/logging/configuration/stream/status')).status).toBe(404);
    expect((await owner.del('/tailnet/-/logging/configuration/stream')).status).toBe(200);
    const logs = ((await owner.get('/tailnet/-/logging/configuration')).body.logs as any[]).filter((l) => l.target.property === 'LOGSTREAM_ENDPOINT');
    expect(logs.map((l) => l.action)).toEqual(['CREATE', 'UPDATE', 'DELETE']);
    expect(logs[1].old.compressionFormat).toBe('none');
    expect(logs[1].new.compressionFormat).toBe('gzip');
    expect(JSON.stringify(logs)).not.toContain('hec-secret-token');
  });

  it('through the typed client: set, read, status, stop', async () => {
    const client = new AdminClient(coord.url, ownerKey);
    const set = await client.setLogStream({ destinationType: 'axiom', url: receiver.url, token: 'axiom-secret-token' });
    expect(set).toEqual({ logType: 'configuration', destinationType: 'axiom', url: receiver.url, user: '', compressionFormat: 'none' });
    expect(await client.logStream()).toEqual(set);
    await expect.poll(async () => (await client.logStreamStatus()).numEntriesSent, POLL).toBeGreaterThanOrEqual(1);
    expect(receiver.delivered.at(-1)!.headers.authorization).toBe('Bearer axiom-secret-token');
    await client.deleteLogStream();
    const gone = await client.logStream().then(() => null, (e: unknown) => e);
    expect(gone).toBeInstanceOf(AdminApiError);
    expect((gone as AdminApiError).status).toBe(404);
  });

  it('who may read and set it', async () => {
    const roles = {} as Record<string, ReturnType<typeof api>>;
    for (const role of ['it-admin', 'network-admin', 'auditor', 'billing-admin', 'member'] as const) {
      roles[role] = api(coord.url, (await addUser(coord.url, ownerKey, 'example.com', `${role}@example.com`, role)).token);
    }
    const config = { destinationType: 'datadog', url: receiver.url, token: 'dd-key' };
    for (const role of ['auditor', 'billing-admin', 'member']) {
      const r = await roles[role]!.call('PUT', '/tailnet/-/logging/configuration/stream', config);
      expect(r.status, role).toBe(403);
      expect(r.body.message).toMatch(/permission/);
    }
    expect((await owner.get('/tailnet/-/logging/configuration/stream')).status).toBe(404); // nothing was set
    expect((await roles['it-admin']!.call('PUT', '/tailnet/-/logging/configuration/stream', config)).status).toBe(200);
    for (const role of ['auditor', 'billing-admin']) {
      expect((await roles[role]!.get('/tailnet/-/logging/configuration/stream')).body.destinationType, role).toBe('datadog');
      expect((await roles[role]!.get('/tailnet/-/logging/configuration/stream/status')).status, role).toBe(200);
      expect((await roles[role]!.del('/tailnet/-/logging/configuration/stream')).status, role).toBe(403);
    }
    expect((await roles.member!.get('/tailnet/-/logging/configuration/stream')).status).toBe(403);
    expect((await roles['network-admin']!.del('/tailnet/-/logging/configuration/stream')).status).toBe(200);
  });

  it('refuses a bad configuration with 400 and a message, and keeps what was set', async () => {
    const put = (body: unknown, type = 'configuration') => owner.call('PUT', `/tailnet/-/logging/${type}/stream`, body);
    const cases: [unknown, RegExp, string?][] = [
      [{ destinationType: 's3', url: receiver.url, token: 't' }, /"s3" is not supported: this server streams to splunk, elastic, panther, cribl, datadog, axiom/],
      [{ url: receiver.url, token: 't' }, /"destinationType" is required/],
      [{ destinationType: 'splunk', token: 't' }, /"url" is required/],
      [{ destinationType: 'splunk', url: 'not a url', token: 't' }, /"url" is not a URL/],
      [{ destinationType: 'splunk', url: 'ftp://127.0.0.1/x', token: 't' }, /must be an https URL/],
      [{ destinationType: 'splunk', url: receiver.url }, /"token" is required/],
      [{ destinationType: 'splunk', url: receiver.url, token: 'tök\n' }, /"token" must be printable ASCII/],
      [{ destinationType: 'datadog', url: receiver.url, token: 't', user: 'bob' }, /"user" is not used by datadog/],
      [{ destinationType: 'splunk', url: receiver.url, token: 't', compressionFormat: 'zstd' }, /"compressionFormat" "zstd" is not supported/],
      [{ destinationType: 'splunk', url: receiver.url, token: 't', s3Bucket: 'b' }, /unsupported field\(s\) "s3Bucket"/],
      [{ destinationType: 'splunk', url: receiver.url, token: 't', logType: 'network' }, /"logType" is "configuration"/],
      [{ destinationType: 'splunk', url: receiver.url, token: 't' }, /network flow logs are not collected by this server/, 'network'],
    ];
    for (const [body, message, type] of cases) {
      const r = await put(body, type);
      expect({ status: r.status, body }).toEqual({ status: 400, body });
      expect(r.body.message).toMatch(message);
    }
    expect((await owner.get('/tailnet/-/logging/network/stream')).status).toBe(404);
    expect((await owner.get('/tailnet/-/logging/network/stream')).body.message).toMatch(/network flow logs are not collected/);
    expect((await owner.get('/tailnet/-/logging/nonsense/stream')).status).toBe(404);
    expect((await owner.get('/tailnet/-/logging/configuration/stream')).status).toBe(404); // still nothing set
  });
});

describe('log streaming limits and targets', () => {
  it('bounds the backlog: the oldest entries beyond it are dropped, and the status and the metrics say so', async () => {
    const coord = new Coord();
    const receiver = new Receiver();
    try {
      await receiver.up();
      const port = receiver.port;
      await receiver.down();
      receiver.port = port;
      await coord.start([...FAST, '--log-stream-backlog', '3', '--metrics-listen', '127.0.0.1:0']);
      const metricsUrl = /"metrics":"([^"]+)"/.exec(coord.stdout)![1]!;
      const scrape = async () => (await fetch(metricsUrl)).text();
      const panther = { destination: 'panther' };
      const owner = api(coord.url, coord.createTailnet('example.com', 'alice@example.com'));
      expect((await owner.call('PUT', '/tailnet/-/logging/configuration/stream', { destinationType: 'panther', url: receiver.url, token: 'panther-secret-token' })).status).toBe(200);
      for (let i = 1; i <= 6; i++) expect((await owner.post('/tailnet/-/dns/searchpaths', { searchPaths: [`d${i}.example.com`] })).status).toBe(200);
      const status = async () => (await owner.get('/tailnet/-/logging/configuration/stream/status')).body;
      // 7 entries (the stream's creation and 6 changes), 3 kept
      await expect.poll(async () => (await status()).numDroppedEntries, POLL).toBe(4);
      expect((await status()).lastError).toMatch(/dropped the 4 oldest entries: the backlog was over its bound \(3 entries/);
      expect((await status()).numPendingEntries).toBe(3);
      let text = await scrape();
      expect(promtoolProblems(text)).toBe('');
      expect(sample(text, 'meshward_coord_log_streams', panther)).toBe(1);
      expect(sample(text, 'meshward_coord_log_stream_dropped_entries_total', panther)).toBe(4);
      expect(sample(text, 'meshward_coord_log_stream_backlog_entries', panther)).toBe(3);
      expect(sample(text, 'meshward_coord_log_stream_backlog_bytes', panther)).toBeGreaterThan(0);
      expect(sample(text, 'meshward_coord_log_stream_failed_requests_total', panther)).toBeGreaterThanOrEqual(1);
      expect(sample(text, 'meshward_coord_log_stream_entries_sent_total', panther)).toBe(0);
      expect(sample(text, 'meshward_coord_log_stream_entries_sent_total', { destination: 'splunk' })).toBe(0);
      await receiver.up();
      await expect.poll(async () => (await status()).numPendingEntries, POLL).toBe(0);
      expect(receiver.delivered[0]!.headers.authorization).toBe('Bearer panther-secret-token');
      expect(receiver.events().map((e) => e.new[0])).toEqual(['d4.example.com', 'd5.example.com', 'd6.example.com']);
      expect((await status()).numDroppedEntries).toBe(4);
      text = await scrape();
      expect(promtoolProblems(text)).toBe('');
      expect(sample(text, 'meshward_coord_log_stream_entries_sent_total', panther)).toBe(3);
      expect(sample(text, 'meshward_coord_log_stream_backlog_entries', panther)).toBe(0);
      expect(sample(text, 'meshward_coord_log_stream_sent_bytes_total', panther)).toBe(receiver.delivered.reduce((sum, d) => sum + Buffer.byteLength(d.body), 0));
      const s = await status();
      expect(sample(text, 'meshward_coord_log_stream_requests_total', panther)).toBe(s.numTotalRequests);
      expect(sample(text, 'meshward_coord_log_stream_failed_requests_total', panther)).toBe(s.numFailedRequests);
      // Labels name the destination's type only: no URL, host, port or token.
      expect(text).not.toContain('panther-secret-token');
      expect(text).not.toContain(`127.0.0.1:${port}`);
    } finally {
      await coord.cleanup();
      await receiver.down();
    }
  });

  it('a destination that echoes the credentials in its refusal: the token reaches no status, audit entry or log line', async () => {
    const coord = new Coord();
    // Answers 401 and repeats what it was sent, as some proxies do.
    const echo = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(401).end(`{"error":"bad credentials: ${req.headers.authorization ?? req.headers["dd-api-key"]}"}`));
    });
    try {
      await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
      const url = `http://127.0.0.1:${(echo.address() as AddressInfo).port}/ingest`;
      await coord.start([...FAST, '--log-level', 'debug']);
      const owner = api(coord.url, coord.createTailnet('example.com', 'alice@example.com'));
      const token = 'echoed-secret-token';
      for (const config of [{ destinationType: 'datadog', url, token }, { destinationType: 'cribl', url, user: 'ingest', token }]) {
        expect((await owner.call('PUT', '/tailnet/-/logging/configuration/stream', config)).status).toBe(200);
        const status = async () => (await owner.get('/tailnet/-/logging/configuration/stream/status')).body;
        await expect.poll(async () => (await status()).lastError, POLL).toMatch(/destination answered 401: .*bad credentials/);
        const seen = JSON.stringify(await status()) + JSON.stringify((await owner.get('/tailnet/-/logging/configuration')).body) + coord.stdout + coord.stderr;
        const basic = Buffer.from(`ingest:${token}`).toString('base64');
        for (const secret of [token, basic]) expect(seen).not.toContain(secret);
      }
    } finally {
      await coord.cleanup();
      await new Promise((r) => echo.close(r));
    }
  });

  it('without --allow-private-webhooks: https only, and no loopback or private destination', async () => {
    const coord = new Coord();
    try {
      await coord.start();
      const owner = api(coord.url, coord.createTailnet('example.com', 'alice@example.com'));
      const put = (url: string) => owner.call('PUT', '/tailnet/-/logging/configuration/stream', { destinationType: 'axiom', url, token: 't' });
      const http = await put('http://8.8.8.8/v1/datasets/x/ingest');
      expect(http.status).toBe(400);
      expect(http.body.message).toMatch(/"url" must be an https URL$/);
      const loop = await put('https://127.0.0.1:9/v1/datasets/x/ingest');
      expect(loop.status).toBe(400);
      expect(loop.body.message).toMatch(/log streaming destination 127\.0\.0\.1 is a loopback address; coord sends logs to public addresses only/);
      const priv = await put('https://10.1.2.3/ingest');
      expect(priv.body.message).toMatch(/10\.1\.2\.3 is a private address/);
    } finally {
      await coord.cleanup();
    }
  });
});
