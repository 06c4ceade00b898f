// Single-use nonces of signed machine requests, kept in the database so that a restart of coord does
// not make captured requests valid again. Rows live as long as a request's timestamp could still pass
// the clock-skew check, so the table holds at most a few minutes of requests.
import type Database from 'better-sqlite3';

const SWEEP_EVERY_MS = 10_000;

export class NonceLedger {
  private lastSweep = 0;
  private readonly insert: Database.Statement;
  private readonly sweep: Database.Statement;

  constructor(db: Database.Database) {
    this.insert = db.prepare('INSERT OR IGNORE INTO machine_nonces (key, expires) VALUES (?, ?)');
    this.sweep = db.prepare('DELETE FROM machine_nonces WHERE expires < ?');
  }

  /** Records `key` until `expires` (unix ms); false when it was already recorded: a replay. */
  use(key: string, now: number, expires: number): boolean {
    if (now - this.lastSweep > SWEEP_EVERY_MS) {
      this.sweep.run(now);
      this.lastSweep = now;
    }
    return this.insert.run(key, expires).changes === 1;
  }
}
