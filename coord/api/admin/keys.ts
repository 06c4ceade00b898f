// /tailnet/{t}/keys: auth keys and API keys.
import type { Key } from '../../store/index.js';
import { bodyObject, route, tailnetParam, type Answer, type Call } from './call.js';
import { keyJson } from './json.js';

function json(c: Call, k: Key, secret?: string) {
  return keyJson(k, c.domain.users.byId(k.deviceUserId), secret);
}

async function createKey(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  const { key, secret } = c.domain.keys.create(c.caller, t, await bodyObject(c));
  return { body: json(c, key, secret) };
}

function listKeys(c: Call): Answer {
  return { body: { keys: c.domain.keys.list(c.caller, tailnetParam(c)).map((k) => json(c, k)) } };
}

function getKey(c: Call): Answer {
  return { body: json(c, c.domain.keys.find(c.caller, tailnetParam(c), c.params.id!)) };
}

function deleteKey(c: Call): Answer {
  c.domain.keys.revoke(c.caller, c.domain.keys.find(c.caller, tailnetParam(c), c.params.id!));
  return { body: {} };
}

export const keyRoutes = [
  route('POST', '/tailnet/:t/keys', 'keys:auth', createKey),
  route('GET', '/tailnet/:t/keys', 'keys:auth', listKeys),
  route('GET', '/tailnet/:t/keys/:id', 'keys:auth', getKey),
  route('DELETE', '/tailnet/:t/keys/:id', 'keys:auth', deleteKey),
];
