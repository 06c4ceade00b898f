// The configuration audit log of a tailnet (every write records its entry in its own transaction).
import { InvalidInput } from '../errors.js';
import type { AuditEntry, Tailnet } from '../store/index.js';
import { Operations } from './context.js';

export class AuditOperations extends Operations {
  /** Entries between `start` and `end` (RFC 3339; default: all until now). */
  list(t: Tailnet, start: string | null, end: string | null): AuditEntry[] {
    const from = start ?? '1970-01-01T00:00:00.000Z';
    const to = end ?? new Date().toISOString();
    for (const [k, v] of [['start', from], ['end', to]] as const) if (Number.isNaN(Date.parse(v))) throw new InvalidInput(`"${k}" must be an RFC 3339 time`);
    return this.store.listAudit(t.id, new Date(from).toISOString(), new Date(to).toISOString());
  }
}
