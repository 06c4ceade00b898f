// coord's side of the relay-to-coord check: a standalone relay (`coord relay`) asks, with the secret
// `coord relays add` gave it, whether node keys belong to registered, authorized, unexpired devices of
// active users, and who their peers are (the node keys their last netmaps listed: the relay forwards
// only between peers, the same rule as coord's own relay).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { HttpError, jsonObject, readBody, sendError, sendJson } from '../api/http.js';
import type { NetmapHub } from '../netmap-stream.js';
import { parseSecret, secretMatches } from '../secrets.js';
import type { Store } from '../store/index.js';
import { KEY_LEN, VERIFY_MAX_KEYS, type VerifyAnswer, type VerifyResponse } from '../../wire/relay.js';
import { coordAuthorizer } from './authorizer.js';

const BASE64_KEY = /^[A-Za-z0-9+/]{43}=$/;

export function relayVerifier(store: Store, hub: NetmapHub, log: Logger) {
  const authorizer = coordAuthorizer(store, hub);

  /** The relay a bearer secret belongs to, or a 401. */
  function relayOf(req: IncomingMessage): string {
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    const parsed = m ? parseSecret(m[1]!) : undefined;
    const r = parsed?.kind === 'relay' ? store.getRelayBySecretId(parsed.id) : undefined;
    if (!r || !secretMatches(m![1]!, r.secretHash)) throw new HttpError(401, 'not a relay secret coord knows (coord relays add NAME prints one)');
    return r.name;
  }

  return async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (req.method !== 'POST') throw new HttpError(405, 'POST only');
      const relay = relayOf(req);
      const body = jsonObject(await readBody(req, 64 * VERIFY_MAX_KEYS));
      const keys = body.keys;
      if (!Array.isArray(keys) || keys.length > VERIFY_MAX_KEYS || !keys.every((k) => typeof k === 'string')) {
        throw new HttpError(400, `"keys": an array of at most ${VERIFY_MAX_KEYS} node keys (base64)`);
      }
      const devices: Record<string, VerifyAnswer> = {};
      for (const key of keys as string[]) {
        const wellFormed = BASE64_KEY.test(key) && Buffer.from(key, 'base64').length === KEY_LEN;
        const authorized = wellFormed && (await authorizer.mayConnect(key));
        devices[key] = { authorized, peers: authorized ? hub.peersOf(key) : [] };
      }
      const answer: VerifyResponse = { relay, devices };
      sendJson(res, 200, answer, { 'cache-control': 'no-store' });
    } catch (err) {
      if (err instanceof HttpError) return sendError(res, err);
      log.error({ err }, 'relay verification failed');
      sendError(res, new HttpError(500, 'internal error'));
    }
  };
}
