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

function getWebhook(c: Call): Answer {
  return { body: webhookJson(c.domain.webhooks.find(c.caller, c.params.id!)) };
}

function rotateWebhookSecret(c: Call): Answer {
  const { webhook, secret } = c.domain.webhooks.rotateSecret(c.caller, c.domain.webhooks.find(c.caller, c.params.id!));
  return { body: webhookJson(webhook, secret) };
}

/** Accepted: the test event is on its way (delivered and retried in the background). */
function testWebhook(c: Call): Answer {
  c.domain.webhooks.test(c.caller, c.domain.webhooks.find(c.caller, c.params.id!));
  return { status: 202, body: {} };
}

function deleteWebhook(c: Call): Answer {
  c.domain.webhooks.delete(c.caller, c.domain.webhooks.find(c.caller, c.params.id!));
  return { body: {} };
}

export const webhookRoutes = [
  route('POST', '/tailnet/:t/webhooks', 'webhooks:write', createWebhook),
  route('GET', '/tailnet/:t/webhooks', 'webhooks:write', listWebhooks),
  route('GET', '/webhooks/:id', 'webhooks:write', getWebhook),
  route('PATCH', '/webhooks/:id', 'webhooks:write', patchWebhook),
  route('POST', '/webhooks/:id/rotate', 'webhooks:write', rotateWebhookSecret),
  route('POST', '/webhooks/:id/test', 'webhooks:write', testWebhook),
  route('DELETE', '/webhooks/:id', 'webhooks:write', deleteWebhook),
];
