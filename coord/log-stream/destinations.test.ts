// The request each destination gets: body shape, content type and authentication.
import { describe, expect, it } from 'vitest';
import { buildBatch, refusal, type StreamEvent } from './destinations.js';

const events: StreamEvent[] = [1, 2].map((n) => ({ eventTime: `2026-01-02T03:04:0${n}.500Z`, entry: { eventGroupID: String(n), action: 'UPDATE' } }));
const batch = (destinationType: string, user = '') => buildBatch({ destinationType, user, token: 'tok' }, events, 1 << 20);

describe('log stream destinations', () => {
  it('splunk, panther and cribl: {"time", "event"} per line, each with its own authorization', () => {
    for (const [type, auth] of [['splunk', 'Splunk tok'], ['panther', 'Bearer tok'], ['cribl', 'tok']]) {
      const b = batch(type!);
      expect(b.count).toBe(2);
      expect(b.body.trimEnd().split('\n').map((l) => JSON.parse(l))).toEqual(events.map((e) => ({ time: Date.parse(e.eventTime) / 1000, event: e.entry })));
      expect(b.headers.authorization).toBe(auth);
    }
  });

  it('elastic: a _bulk body of create actions and documents with @timestamp', () => {
    const b = batch('elastic');
    expect(b.headers['content-type']).toBe('application/x-ndjson');
    expect(b.headers.authorization).toBe('ApiKey tok');
    expect(b.body.endsWith('\n')).toBe(true);
    const lines = b.body.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(lines).toEqual([{ create: {} }, { '@timestamp': events[0]!.eventTime, ...events[0]!.entry }, { create: {} }, { '@timestamp': events[1]!.eventTime, ...events[1]!.entry }]);
  });

  it('datadog and axiom: a JSON array, with their own header', () => {
    const d = batch('datadog');
    expect(d.headers['dd-api-key']).toBe('tok');
    expect(d.headers.authorization).toBeUndefined();
    expect(JSON.parse(d.body)).toEqual(events.map((e) => ({ ddsource: 'meshward', service: 'meshward-coord', ddtags: 'logtype:configuration', timestamp: Date.parse(e.eventTime), ...e.entry })));
    const a = batch('axiom');
    expect(a.headers.authorization).toBe('Bearer tok');
    expect(JSON.parse(a.body)).toEqual(events.map((e) => ({ _time: e.eventTime, ...e.entry })));
  });

  it('a user means HTTP Basic with the token as password', () => {
    expect(batch('elastic', 'ingest').headers.authorization).toBe(`Basic ${Buffer.from('ingest:tok').toString('base64')}`);
  });

  it('stops at the body bound, but always takes one entry', () => {
    expect(buildBatch({ destinationType: 'axiom', user: '', token: 't' }, events, 10).count).toBe(1);
    const one = JSON.stringify({ _time: events[0]!.eventTime, ...events[0]!.entry });
    expect(buildBatch({ destinationType: 'axiom', user: '', token: 't' }, events, 2 * one.length + 2).count).toBe(1);
    expect(buildBatch({ destinationType: 'axiom', user: '', token: 't' }, events, 2 * one.length + 3).count).toBe(2);
  });

  it('a non-2xx answer, or Elasticsearch refusing documents, is a failure', () => {
    expect(refusal({ destinationType: 'splunk', user: '', token: 'secret-token' }, 200, '{"text":"Success"}')).toBeNull();
    expect(refusal({ destinationType: 'splunk', user: '', token: 'secret-token' }, 403, '{"text":"Invalid token"}')).toBe('destination answered 403: {"text":"Invalid token"}');
    expect(refusal({ destinationType: 'elastic', user: '', token: 'secret-token' }, 200, '{"took":3,"errors":true,"items":[]}')).toMatch(/refused some documents/);
    expect(refusal({ destinationType: 'elastic', user: '', token: 'secret-token' }, 200, '{"took":3,"errors":false,"items":[]}')).toBeNull();
  });

  it('shows a refusal without the credentials the destination repeats', () => {
    const token = 'tok-3n8Xq';
    expect(refusal({ destinationType: 'splunk', user: '', token }, 401, `{"text":"Invalid token Splunk ${token}"}`)).toBe('destination answered 401: {"text":"Invalid token [redacted]"}');
    expect(refusal({ destinationType: 'datadog', user: '', token }, 403, `{"errors":["bad key ${token}"]}`)).toBe('destination answered 403: {"errors":["bad key [redacted]"]}');
    const basic = Buffer.from(`ingest:${token}`).toString('base64');
    expect(refusal({ destinationType: 'elastic', user: 'ingest', token }, 401, `no: Basic ${basic} / ${basic}`)).toBe('destination answered 401: no: [redacted] / [redacted]');
  });
});
