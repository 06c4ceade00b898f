// The console's only way to the server: the admin API (and the sign-in glue under /admin/api). A refused
// call throws an Error carrying the API's own message, which the pages show as it is.
let csrf = '';

export function setCsrf(token) {
  csrf = token || '';
}

export class ApiError extends Error {
  constructor(status, message, data) {
    super(message);
    this.status = status;
    this.data = data;
  }
}

export async function call(method, path, body, headers = {}) {
  const h = { ...headers };
  if (method !== 'GET' && csrf) h['x-csrf-token'] = csrf;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    h['content-type'] ??= 'application/json';
  }
  const r = await fetch(path, { method, headers: h, body: payload, credentials: 'same-origin' });
  const text = await r.text();
  let data;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!r.ok) throw new ApiError(r.status, (data && data.message) || `${r.status} ${r.statusText}`, data && data.data);
  return { data, text, headers: r.headers };
}

const v2 = (p) => '/api/v2' + p;
export const api = {
  get: async (p) => (await call('GET', v2(p))).data,
  post: async (p, body = {}, headers) => (await call('POST', v2(p), body, headers)).data,
  patch: async (p, body = {}) => (await call('PATCH', v2(p), body)).data,
  del: async (p) => (await call('DELETE', v2(p))).data,
  raw: (method, p, body, headers) => call(method, v2(p), body, headers),
};

export const session = {
  me: async () => {
    try {
      return (await call('GET', '/admin/api/session')).data;
    } catch (e) {
      if (e.status === 401) return null;
      throw e;
    }
  },
  signIn: async (email, password, network) => (await call('POST', '/admin/api/session', { email, password, network })).data,
  signOut: async () => (await call('DELETE', '/admin/api/session')).data,
  setPassword: async (code, password) => (await call('POST', '/admin/api/password', { code, password })).data,
  invite: async (code) => (await call('GET', `/admin/api/invite/${encodeURIComponent(code)}`)).data,
};
