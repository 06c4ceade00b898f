// /tailnet/{t}/devices and /device/{id}: listing, authorization, names, key expiry, tags, routes, removal.
import { bool, strList, str } from '../../domain/input.js';
import { InvalidInput } from '../../errors.js';
import { bodyObject, route, tailnetParam, type Answer, type Call } from './call.js';
import { deviceJson } from './json.js';

/**
 * `fields`: `default`, `all` or both, comma-separated (Tailscale answers their union). We always answer every field
 * (the default set is a subset of ours), so the value is only checked.
 */
function checkFields(c: Call): void {
  const fields = c.url.searchParams.get('fields');
  if (fields !== null && !fields.split(',').every((f) => f === '' || f === 'all' || f === 'default')) {
    throw new InvalidInput(`"fields" must be "default", "all" or both, comma-separated (not "${fields}")`);
  }
}

function listDevices(c: Call): Answer {
  checkFields(c);
  return { body: { devices: c.domain.devices.list(tailnetParam(c)).map(deviceJson) } };
}

function getDevice(c: Call): Answer {
  checkFields(c);
  return { body: deviceJson(c.domain.devices.get(c.caller, c.params.id!)) };
}

function deleteDevice(c: Call): Answer {
  c.domain.devices.delete(c.caller, c.params.id!);
  return { body: {} };
}

async function authorizeDevice(c: Call): Promise<Answer> {
  const d = c.domain.devices.own(c.caller, c.params.id!);
  c.domain.devices.setAuthorized(c.caller, d, bool((await bodyObject(c)).authorized, 'authorized'));
  return { body: {} };
}

async function renameDevice(c: Call): Promise<Answer> {
  const d = c.domain.devices.own(c.caller, c.params.id!);
  c.domain.devices.rename(c.caller, d, str((await bodyObject(c)).name, 'name'));
  return { body: {} };
}

function expireDevice(c: Call): Answer {
  c.domain.devices.expire(c.caller, c.domain.devices.own(c.caller, c.params.id!));
  return { body: {} };
}

async function deviceKey(c: Call): Promise<Answer> {
  const d = c.domain.devices.own(c.caller, c.params.id!);
  c.domain.devices.setKeyExpiryDisabled(c.caller, d, bool((await bodyObject(c)).keyExpiryDisabled, 'keyExpiryDisabled'));
  return { body: {} };
}

async function setDeviceTags(c: Call): Promise<Answer> {
  const d = c.domain.devices.own(c.caller, c.params.id!);
  c.domain.devices.setTags(c.caller, d, strList((await bodyObject(c)).tags, 'tags'));
  return { body: {} };
}

function getRoutes(c: Call): Answer {
  const d = c.domain.devices.own(c.caller, c.params.id!);
  return { body: { advertisedRoutes: d.advertisedRoutes, enabledRoutes: d.enabledRoutes } };
}

async function setRoutes(c: Call): Promise<Answer> {
  const d = c.domain.devices.own(c.caller, c.params.id!);
  const u = c.domain.devices.setRoutes(c.caller, d, strList((await bodyObject(c)).routes, 'routes'));
  return { body: { advertisedRoutes: u.advertisedRoutes, enabledRoutes: u.enabledRoutes } };
}

async function setDeviceIp(c: Call): Promise<Answer> {
  const d = c.domain.devices.own(c.caller, c.params.id!);
  c.domain.devices.setIpv4(c.caller, d, (await bodyObject(c)).ipv4);
  return { body: {} };
}

function getAttributes(c: Call): Answer {
  return { body: c.domain.devices.attributes(c.domain.devices.own(c.caller, c.params.id!)) };
}

async function setAttribute(c: Call): Promise<Answer> {
  const d = c.domain.devices.own(c.caller, c.params.id!);
  const updated = c.domain.devices.setAttribute(c.caller, d, c.params.key!, await bodyObject(c));
  return { body: c.domain.devices.attributes(updated) };
}

function deleteAttribute(c: Call): Answer {
  c.domain.devices.deleteAttribute(c.caller, c.domain.devices.own(c.caller, c.params.id!), c.params.key!);
  return { body: {} };
}

export const routeRoutes = [
  route('GET', '/device/:id/routes', 'network:read', getRoutes),
  route('POST', '/device/:id/routes', 'network:write', setRoutes),
];

export const deviceRoutes = [
  route('GET', '/tailnet/:t/devices', 'machines:read', listDevices),
  route('GET', '/device/:id', 'machines:read', getDevice),
  route('POST', '/device/:id/authorized', 'machines:write', authorizeDevice),
  route('POST', '/device/:id/name', 'machines:write', renameDevice),
  route('POST', '/device/:id/expire', 'machines:write', expireDevice),
  route('POST', '/device/:id/key', 'machines:write', deviceKey),
  route('DELETE', '/device/:id', 'machines:write', deleteDevice),
  route('POST', '/device/:id/tags', 'device-tags:write', setDeviceTags),
  route('POST', '/device/:id/ip', 'machines:write', setDeviceIp),
  route('GET', '/device/:id/attributes', 'machines:read', getAttributes),
  route('POST', '/device/:id/attributes/:key', 'machines:write', setAttribute),
  route('DELETE', '/device/:id/attributes/:key', 'machines:write', deleteAttribute),
];
