// /tailnet/{t}/logging/configuration: the configuration audit log.
import { InvalidInput } from '../../errors.js';
import { route, tailnetParam, type Answer, type Call } from './call.js';
import { auditEntryJson, isAuditEvent } from './audit-vocabulary.js';

/** A filter's values: the parameter repeated (`event=A&event=B`, the spec's form) or comma-separated. */
function values(c: Call, name: string): string[] {
  return c.url.searchParams.getAll(name).flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
}

/** `actor` (an actor's id or login name), `target` (a target's id) and `event` (TYPE.ACTION[.PROPERTY]) filters, each any of its values. */
function auditLog(c: Call): Answer {
  const t = tailnetParam(c);
  const actors = values(c, 'actor');
  const targets = values(c, 'target');
  const events = values(c, 'event');
  const bad = events.filter((e) => !isAuditEvent(e));
  if (bad.length > 0) throw new InvalidInput(`unknown event ${JSON.stringify(bad[0]!.slice(0, 80))}: events are TARGET_TYPE.ACTION[.PROPERTY], e.g. NODE.CREATE or TAILNET.UPDATE.ACL`);
  const logs = c.domain.audit.list(t, c.url.searchParams.get('start'), c.url.searchParams.get('end')).map(auditEntryJson).filter((l) =>
    (actors.length === 0 || actors.includes(String(l.actor.id ?? '')) || actors.includes(String(l.actor.loginName ?? ''))) &&
    (targets.length === 0 || targets.includes(String(l.target.id ?? ''))) &&
    (events.length === 0 || events.includes([l.target.type, l.action, l.target.property].filter((p) => p !== undefined).join('.'))));
  return { body: { version: '1.1', tailnet: t.name, logs } };
}

export const auditRoutes = [route('GET', '/tailnet/:t/logging/configuration', 'audit:read', auditLog)];
