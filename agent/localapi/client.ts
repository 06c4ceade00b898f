// The CLI's side of the local API: JSON over HTTP on the daemon's unix socket.
import { request } from 'node:http';

export class DaemonNotRunning extends Error {
  constructor(socket: string) {
    super(
      `the meshward agent is not running (nothing answers on ${socket}); ` +
        `start it with: systemctl start meshward-agent   (or run: agent daemon)`,
    );
  }
}

/** An answer of the daemon that is not 2xx; message is the daemon's own words. */
export class LocalApiRefused extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** GET of an endpoint that answers text (GET /metrics); refusals still come as JSON. */
export function callDaemonText(socket: string, path: string, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method: 'GET', path, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return resolve(text);
        let message = `HTTP ${status}`;
        try {
          message = (JSON.parse(text) as { message?: string }).message ?? message;
        } catch {
          // not JSON: keep the status
        }
        reject(new LocalApiRefused(message, status));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`the agent did not answer within ${timeoutMs / 1000} s`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(daemonCallError(socket, err)));
    req.end();
  });
}

function daemonCallError(socket: string, err: NodeJS.ErrnoException): Error {
  if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') return new DaemonNotRunning(socket);
  if (err.code === 'EACCES') return new Error(`permission denied on ${socket}: the agent's socket is for root; try with sudo`);
  return err;
}

export function callDaemon<T>(socket: string, method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      {
        socketPath: socket,
        method,
        path,
        headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text === '' ? {} : JSON.parse(text);
          } catch {
            reject(new Error(`the agent answered something that is not JSON: ${text.slice(0, 200)}`));
            return;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(json as T);
          else reject(new LocalApiRefused((json as { message?: string }).message ?? `HTTP ${status}`, status));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`the agent did not answer within ${timeoutMs / 1000} s`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(daemonCallError(socket, err)));
    req.end(payload);
  });
}
