// Device invites and shares: /device/{id}/device-invites, /device-invites/{id}, accepting an invite.
import { InvalidInput } from '../../errors.js';
import { str } from '../../domain/input.js';
import { fqdn, type DeviceInvite } from '../../store/index.js';
import { parseJson } from '../http.js';
import { bodyObject, route, type Answer, type Call } from './call.js';
import { deviceInviteJson, deviceJson, inviteUrl, userRefJson } from './json.js';

function inviteJson(c: Call, inv: DeviceInvite, extra?: Record<string, unknown>) {
  const acceptances = inv.multiUse ? c.domain.shares.acceptances(inv).map((a) => ({ ...a, user: c.domain.users.byId(a.userId) })) : undefined;
  const refs = { device: c.domain.devices.byId(inv.deviceId), sharer: c.domain.users.byId(inv.sharerId), acceptedBy: c.domain.users.byId(inv.acceptedBy), acceptances };
  return deviceInviteJson(inv, refs, { shared: c.domain.shares.inviteStillShared(inv), ...extra });
}

async function createDeviceInvites(c: Call): Promise<Answer> {
  const d = c.domain.devices.own(c.caller, c.params.id!);
  const body = await c.body();
  const raw = body.length === 0 ? [{}] : parseJson(body);
  const made = c.domain.shares.createInvites(c.caller, d, Array.isArray(raw) ? raw : [raw]);
  const publicUrl = c.deps.publicUrl();
  // With a mail server, each invite that names an "email" is mailed too; a failed mail is named in `mailError`.
  const mailed = await c.domain.shares.mailNewInvites(made, (code) => inviteUrl(publicUrl, code));
  return { body: mailed.map(({ invite, code, mailError }) => inviteJson(c, invite, { inviteUrl: inviteUrl(publicUrl, code), ...(mailError ? { mailError } : {}) })) };
}

/** Mails the invite again to its "email", with a new code (the old link stops working once the mail is out). */
async function resendDeviceInvite(c: Call): Promise<Answer> {
  const publicUrl = c.deps.publicUrl();
  await c.domain.shares.resendInvite(c.caller, c.params.id!, (code) => inviteUrl(publicUrl, code));
  return { body: {} };
}

function listDeviceInvites(c: Call): Answer {
  const d = c.domain.devices.own(c.caller, c.params.id!);
  return { body: c.domain.shares.listInvites(d).map((inv) => inviteJson(c, inv)) };
}

function getDeviceInvite(c: Call): Answer {
  return { body: inviteJson(c, c.domain.shares.invite(c.caller, c.params.id!)) };
}

function deleteDeviceInvite(c: Call): Answer {
  c.domain.shares.deleteInvite(c.caller, c.params.id!);
  return { body: {} };
}

async function acceptDeviceInvite(c: Call): Promise<Answer> {
  const b = await bodyObject(c);
  const given = b.invite !== undefined ? str(b.invite, 'invite') : b.code !== undefined ? str(b.code, 'code') : undefined;
  if (given === undefined) throw new InvalidInput('"invite" is required: the invite link (or its code)');
  const { share, invite } = c.domain.shares.accept(c.caller, given);
  const view = c.domain.devices.externalView(share);
  // Our device, plus the fields Tailscale's answer names (`fqdn`, `ipv4`, `ipv6`, `includeExitNode`: never, see createInvites).
  const device = view && { ...deviceJson(view), fqdn: fqdn(view.device, view.home), ipv4: view.device.ipv4, ipv6: view.device.ipv6, includeExitNode: false };
  // Tailscale spells the picture `profilePicURL` here (and `profilePicUrl` elsewhere): both, so either decoder finds it.
  const ref = (u: Parameters<typeof userRefJson>[0], id?: string) => { const r = userRefJson(u, id); return { ...r, profilePicURL: r.profilePicUrl }; };
  return { body: { device, sharer: ref(c.domain.users.byId(invite.sharerId), invite.sharerId), acceptedBy: ref(c.caller.user) } };
}

export const shareRoutes = [
  route('POST', '/device/:id/device-invites', 'share', createDeviceInvites),
  route('GET', '/device/:id/device-invites', 'share', listDeviceInvites),
  route('GET', '/device-invites/:id', 'share', getDeviceInvite),
  route('DELETE', '/device-invites/:id', 'share', deleteDeviceInvite),
  route('POST', '/device-invites/:id/resend', 'share', resendDeviceInvite),
  route('POST', '/device-invites/-/accept', 'share:accept', acceptDeviceInvite),
];
