// /tailnet/{t}/logging/configuration: the configuration audit log.
import { route, tailnetParam, type Answer, type Call } from './call.js';
import { auditEntryJson } from './json.js';

function auditLog(c: Call): Answer {
  const t = tailnetParam(c);
  const logs = c.domain.audit.list(t, c.url.searchParams.get('start'), c.url.searchParams.get('end')).map(auditEntryJson);
  return { body: { version: '1.1', tailnet: t.name, logs } };
}

export const auditRoutes = [route('GET', '/tailnet/:t/logging/configuration', 'audit:read', auditLog)];
