// /tailnet/{t}/logging/{logType}/stream and .../stream/status: streaming the configuration log elsewhere.
import { publicConfig } from '../../domain/log-streams.js';
import { bodyObject, route, tailnetParam, type Answer, type Call } from './call.js';

function getConfig(c: Call): Answer {
  return { body: publicConfig(c.domain.logStreams.get(tailnetParam(c), c.params.logType!)) };
}

async function setConfig(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  return { body: publicConfig(await c.domain.logStreams.set(c.caller, t, c.params.logType!, await bodyObject(c))) };
}

function disable(c: Call): Answer {
  c.domain.logStreams.delete(c.caller, tailnetParam(c), c.params.logType!);
  return { body: {} };
}

function status(c: Call): Answer {
  return { body: c.domain.logStreams.status(tailnetParam(c), c.params.logType!) };
}

export const logStreamRoutes = [
  route('GET', '/tailnet/:t/logging/:logType/stream', 'audit:read', getConfig),
  route('PUT', '/tailnet/:t/logging/:logType/stream', 'logstream:write', setConfig),
  route('DELETE', '/tailnet/:t/logging/:logType/stream', 'logstream:write', disable),
  route('GET', '/tailnet/:t/logging/:logType/stream/status', 'audit:read', status),
];
