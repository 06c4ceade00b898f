// /tailnet/{t}/users, /users/{id}: users and roles; user invites; signing in (no bearer key needed).
import type { IncomingMessage } from 'node:http';
import type { StatusAction } from '../../domain/index.js';
import { str } from '../../domain/input.js';
import { jsonObject, parseJson } from '../http.js';
import { bodyObject, route, tailnetParam, type AdminDeps, type Answer, type Call } from './call.js';
import { inviteUrl, userInviteJson, userJson } from './json.js';

function listUsers(c: Call): Answer {
  const t = tailnetParam(c);
  const users = c.domain.users.list(t, c.url.searchParams.get('type'), c.url.searchParams.get('role'));
  return { body: { users: users.map(userJson) } };
}

function getUser(c: Call): Answer {
  return { body: userJson(c.domain.users.view(c.domain.users.own(c.caller, c.params.id!))) };
}

async function setUserRole(c: Call): Promise<Answer> {
  const target = c.domain.users.own(c.caller, c.params.id!);
  const u = c.domain.users.setRole(c.caller, target, (await bodyObject(c)).role);
  return { body: userJson(c.domain.users.view(u)) };
}

function userStatusRoute(action: StatusAction) {
  return (c: Call): Answer => {
    c.domain.users.changeStatus(c.caller, c.domain.users.own(c.caller, c.params.id!), action);
    return { body: {} };
  };
}

async function createUserInvites(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  const raw = parseJson(await c.body());
  const made = c.domain.users.createInvites(c.caller, t, Array.isArray(raw) ? raw : [raw]);
  const publicUrl = c.deps.publicUrl();
  // With a mail server, each invite is mailed too; a mail that failed is named in `mailError` (the code is here either way).
  const mailed = await c.domain.users.mailNewInvites(made, (code) => inviteUrl(publicUrl, code));
  return {
    body: mailed.map(({ invite, code, mailError }) =>
      userInviteJson(invite, c.domain.users.byId(invite.inviterId), { code, inviteUrl: inviteUrl(publicUrl, code), ...(mailError ? { mailError } : {}) })),
  };
}

function listUserInvites(c: Call): Answer {
  return { body: c.domain.users.listInvites(tailnetParam(c)).map((inv) => userInviteJson(inv, c.domain.users.byId(inv.inviterId))) };
}

function getUserInvite(c: Call): Answer {
  const inv = c.domain.users.invite(c.caller, c.params.id!);
  return { body: userInviteJson(inv, c.domain.users.byId(inv.inviterId)) };
}

/** Mails the invite again, with a new code (the old link stops working once the mail is out). */
async function resendUserInvite(c: Call): Promise<Answer> {
  const publicUrl = c.deps.publicUrl();
  await c.domain.users.resendInvite(c.caller, c.params.id!, (code) => inviteUrl(publicUrl, code));
  return { body: {} };
}

function deleteUserInvite(c: Call): Answer {
  c.domain.users.deleteInvite(c.caller, c.params.id!);
  return { body: {} };
}

async function acceptUserInvite(req: IncomingMessage, deps: AdminDeps, body: Buffer): Promise<Answer> {
  const b = jsonObject(body);
  const code = str(b.code, 'code');
  const password = str(b.password, 'password');
  const { users } = deps.domain;
  const user = await users.acceptInvite(deps.clientAddr(req), code, password, b.displayName);
  return { body: userJson(users.view(user)) };
}

async function login(req: IncomingMessage, deps: AdminDeps, body: Buffer): Promise<Answer> {
  const b = jsonObject(body);
  const tailnet = str(b.tailnet, 'tailnet');
  const email = str(b.email, 'email');
  const password = str(b.password, 'password');
  const { users } = deps.domain;
  const session = await users.login(deps.clientAddr(req), tailnet, email, password);
  return { body: { token: session.token, expires: session.expires, user: userJson(users.view(session.user)) } };
}

/** Routes without a bearer key, by "METHOD /path". */
export const publicRoutes: Record<string, (req: IncomingMessage, deps: AdminDeps, body: Buffer) => Promise<Answer>> = {
  'POST /api/v2/login': login,
  'POST /api/v2/user-invites/-/accept': acceptUserInvite,
};

export const userInviteRoutes = [
  route('POST', '/tailnet/:t/user-invites', 'provisioning:write', createUserInvites),
  route('GET', '/tailnet/:t/user-invites', 'users:read', listUserInvites),
  route('GET', '/user-invites/:id', 'users:read', getUserInvite),
  route('DELETE', '/user-invites/:id', 'provisioning:write', deleteUserInvite),
  route('POST', '/user-invites/:id/resend', 'provisioning:write', resendUserInvite),
];

export const userRoutes = [
  route('GET', '/tailnet/:t/users', 'users:read', listUsers),
  route('GET', '/users/:id', 'users:read', getUser),
  route('POST', '/users/:id/role', 'users:write', setUserRole),
  route('POST', '/users/:id/approve', 'users:write', userStatusRoute('approve')),
  route('POST', '/users/:id/suspend', 'users:write', userStatusRoute('suspend')),
  route('POST', '/users/:id/restore', 'users:write', userStatusRoute('restore')),
  route('POST', '/users/:id/delete', 'users:write', userStatusRoute('delete')),
];
