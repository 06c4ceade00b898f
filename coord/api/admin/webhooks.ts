// /tailnet/{t}/webhooks and /webhooks/{id}: the tailnet's webhook endpoints.
import { bodyObject, route, tailnetParam, type Answer, type Call } from './call.js';
import { webhookJson } from './json.js';

async function createWebhook(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  const { webhook, secret } = await c.domain.webhooks.create(c.caller, t, await bodyObject(c));
  return { body: webhookJson(webhook, secret) };
}

function listWebhooks(c: Call): Answer {
  return { body: { webhooks: c.domain.webhooks.list(tailnetParam(c)).map((w) => webhookJson(w)) } };
}

async function patchWebhook(c: Call): Promise<Answer> {
  const w = c.domain.webhooks.find(c.caller, c.params.id!);
  return { body: webhookJson(await c.domain.webhooks.update(c.caller, w, await bodyObject(c))) };
}

function deleteWebhook(c: Call): Answer {
  c.domain.webhooks.delete(c.caller, c.domain.webhooks.find(c.caller, c.params.id!));
  return { body: {} };
}

export const webhookRoutes = [
  route('POST', '/tailnet/:t/webhooks', 'webhooks:write', createWebhook),
  route('GET', '/tailnet/:t/webhooks', 'webhooks:write', listWebhooks),
  route('PATCH', '/webhooks/:id', 'webhooks:write', patchWebhook),
  route('DELETE', '/webhooks/:id', 'webhooks:write', deleteWebhook),
];
