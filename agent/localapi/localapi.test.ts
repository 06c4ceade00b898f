import { mkdtempSync, rmSync, statSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callDaemon, callDaemonText, DaemonNotRunning, LocalApiRefused } from './client.js';
import { LocalApiHttpError, serveLocalApi, TextAnswer } from './server.js';

describe('local API over a unix socket', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mw-localapi-'));
  const socket = join(dir, 'run', 'agent.sock');
  let server: Server;

  beforeAll(async () => {
    server = await serveLocalApi(
      socket,
      {
        'GET /status': () => ({ ok: true }),
        'POST /echo': (body) => body,
        'GET /text': () => new TextAnswer('text/plain; version=0.0.4; charset=utf-8', 'a_metric 1\n'),
        'POST /refuse': () => {
          throw new LocalApiHttpError(409, 'requested tags [tag:x] are invalid or not permitted');
        },
      },
      () => {},
    );
  });
  afterAll(() => {
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is a root-only socket and answers JSON', async () => {
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    expect(await callDaemon(socket, 'GET', '/status')).toEqual({ ok: true });
    expect(await callDaemon(socket, 'POST', '/echo', { a: [1] })).toEqual({ a: [1] });
  });

  it("passes the daemon's refusal through verbatim", async () => {
    const err = await callDaemon(socket, 'POST', '/refuse').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LocalApiRefused);
    expect((err as Error).message).toBe('requested tags [tag:x] are invalid or not permitted');
    await expect(callDaemon(socket, 'GET', '/nope')).rejects.toThrow(/no such local API endpoint/);
  });

  it('answers text when the handler says so (the metrics), refusals still as JSON', async () => {
    expect(await callDaemonText(socket, '/text')).toBe('a_metric 1\n');
    await expect(callDaemonText(socket, '/nope')).rejects.toThrow(/no such local API endpoint/);
    await expect(callDaemonText(join(dir, 'absent.sock'), '/text')).rejects.toBeInstanceOf(DaemonNotRunning);
  });

  it('refuses to start a second daemon on a live socket', async () => {
    await expect(serveLocalApi(socket, {}, () => {})).rejects.toThrow(/already running/);
  });

  it('says clearly when no daemon is running', async () => {
    await expect(callDaemon(join(dir, 'absent.sock'), 'GET', '/status')).rejects.toBeInstanceOf(DaemonNotRunning);
    await expect(callDaemon(join(dir, 'absent.sock'), 'GET', '/status')).rejects.toThrow(/agent daemon/);
  });
});
