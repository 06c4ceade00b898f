// Test harness: the real `coord` program from dist/ on loopback (port 0) with a temporary database
// (Coord, from scripts/lab.ts, which the demo uses too), and the admin API through the typed client.
import { AdminClient, type ApiResponse, type Role } from '../../coord/client/index.js';

export { Coord, coordCli, root } from '../../scripts/lab.js';

/** An answer as tests look at it: status, parsed body, text, headers (error statuses do not throw). */
export type Res = ApiResponse<any>;

/** The admin API over real HTTP, as the typed client's raw `request`: tests check every status. */
export function api(base: string, key?: string) {
  const client = new AdminClient(base, key);
  const call = (method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Res> => client.request(method, path, body, headers);
  return {
    get: (p: string, headers?: Record<string, string>) => call('GET', p, undefined, headers),
    post: (p: string, body?: unknown, headers?: Record<string, string>) => call('POST', p, body ?? {}, headers),
    patch: (p: string, body?: unknown) => call('PATCH', p, body ?? {}),
    del: (p: string) => call('DELETE', p),
    call,
  };
}

/** Invites a user with a role, accepts the invite with a password, signs in; returns id and session token. */
export async function addUser(base: string, ownerKey: string, tailnet: string, email: string, role: Role) {
  const [invite] = await new AdminClient(base, ownerKey).inviteUsers([{ email, role }]);
  const pw = 'correct horse battery staple';
  const anyone = new AdminClient(base);
  const user = await anyone.acceptUserInvite(invite!.code, pw);
  const session = await anyone.login(tailnet, email, pw);
  return { id: user.id, token: session.token };
}
