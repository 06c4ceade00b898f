// The agent's state on disk: one directory (mode 0700) of JSON files (mode 0600), each written
// atomically (temporary file, fsync, rename) so that a crash never leaves half a file behind.
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const DEFAULT_STATE_DIR = '/var/lib/meshward';

export class StateDir {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  }

  /** The parsed file, or undefined when it does not exist. A corrupt file is an error that names it. */
  read<T>(name: string): T | undefined {
    const path = join(this.dir, name);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new Error(`${path} is not valid JSON (${(err as Error).message}); move it away to start afresh`);
    }
  }

  write(name: string, value: unknown): void {
    const path = join(this.dir, name);
    const tmp = `${path}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(value, null, 2) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  }

  remove(name: string): void {
    rmSync(join(this.dir, name), { force: true });
  }
}
