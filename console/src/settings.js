// Settings: the network's name and features, auth keys and API keys (a new key's secret is shown once),
// webhooks, and billing for the roles that have it. Each section shows only to roles that may read it,
// and its controls only to roles that may change it; the API decides either way.
import { useEffect, useState } from 'preact/hooks';
import { can } from '../../coord/roles.ts';
import { api } from './api.js';
import { ago, ErrorText, html } from './ui.js';

const EVENTS = ['nodeCreated', 'nodeNeedsApproval', 'nodeApproved', 'nodeKeyExpiringInOneDay', 'nodeKeyExpired', 'nodeDeleted',
  'policyUpdate', 'userCreated', 'userNeedsApproval', 'userSuspended', 'userRestored', 'userDeleted', 'userApproved', 'userRoleUpdated'];

function useRun(load) {
  const [error, setError] = useState('');
  const run = async (fn) => {
    setError('');
    try {
      return await fn();
    } catch (e) {
      setError(e.message);
    } finally {
      load();
    }
  };
  return [error, run, setError];
}

function Secret({ label, value }) {
  return html`<div class="created" role="status"><label>${label} (shown once: copy it now)<input readonly value=${value} onFocus=${(e) => e.target.select()} /></label></div>`;
}

function General({ me }) {
  const [settings, setSettings] = useState(null);
  const [name, setName] = useState(me.tailnet.name);
  const load = () => api.get('/tailnet/-/settings').then(setSettings, (e) => setError(e.message));
  const [error, run, setError] = useRun(load);
  useEffect(() => void load(), []);
  const features = can(me.user.role, 'feature:write');
  const toggle = (k) => run(() => api.patch('/tailnet/-/settings', { [k]: !settings[k] }));
  return html`<section class="card wide">
    <h2>Network</h2>
    <${ErrorText} error=${error} />
    ${can(me.user.role, 'name:write')
      ? html`<form class="row" onSubmit=${(e) => (e.preventDefault(), run(async () => (await api.post('/tailnet/-/name', { name }), location.reload())))}>
          <label>Network name<input value=${name} onInput=${(e) => setName(e.target.value)} /></label><button type="submit">Rename</button></form>`
      : html`<p>Network name: <strong>${me.tailnet.name}</strong></p>`}
    ${settings &&
    html`<ul class="plain">
      ${[['devicesApprovalOn', 'New devices need approval'], ['usersApprovalOn', 'New users need approval'], ['devicesAutoUpdatesOn', 'Automatic updates']].map(
        ([k, text]) => html`<li><label class="check"><input type="checkbox" checked=${settings[k]} disabled=${!features} onChange=${() => toggle(k)} /> ${text}</label></li>`,
      )}
      <li>Device key expiry: ${settings.devicesKeyDurationDays} days</li>
    </ul>`}
  </section>`;
}

function Keys({ me }) {
  const [keys, setKeys] = useState([]);
  const [created, setCreated] = useState(null);
  const [description, setDescription] = useState('');
  const [kind, setKind] = useState('auth');
  const [opts, setOpts] = useState({ reusable: false, ephemeral: false, preauthorized: true });
  const [tags, setTags] = useState('');
  const load = () => api.get('/tailnet/-/keys').then((r) => setKeys(r.keys), (e) => setError(e.message));
  const [error, run, setError] = useRun(load);
  useEffect(() => void load(), []);
  const create = (e) => {
    e.preventDefault();
    run(async () => {
      const body = kind === 'api'
        ? { keyType: 'api', description }
        : { description, capabilities: { devices: { create: { ...opts, tags: tags.split(',').map((t) => t.trim()).filter(Boolean) } } } };
      setCreated(await api.post('/tailnet/-/keys', body));
      setDescription('');
    });
  };
  return html`<section class="card wide">
    <h2>Keys</h2>
    <${ErrorText} error=${error} />
    <form class="row" onSubmit=${create} aria-label="Generate a key">
      <label>Kind<select value=${kind} onChange=${(e) => setKind(e.target.value)}><option value="auth">Auth key (adds devices)</option><option value="api">API access token</option></select></label>
      <label>Description<input value=${description} maxlength="100" onInput=${(e) => setDescription(e.target.value)} /></label>
      ${kind === 'auth' && html`<label>Tags<input placeholder="tag:server" value=${tags} onInput=${(e) => setTags(e.target.value)} /></label>`}
      ${kind === 'auth' && Object.keys(opts).map((k) => html`<label class="check"><input type="checkbox" checked=${opts[k]} onChange=${() => setOpts({ ...opts, [k]: !opts[k] })} /> ${k[0].toUpperCase() + k.slice(1)}</label>`)}
      <button type="submit" class="primary">Generate key</button>
    </form>
    ${created && html`<${Secret} label=${`New ${created.keyType === 'api' ? 'API access token' : 'auth key'}`} value=${created.key} />`}
    <div class="table-wrap"><table>
      <thead><tr><th scope="col">Key</th><th scope="col">Kind</th><th scope="col">Description</th><th scope="col">Created</th><th scope="col">Expires</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${keys.map(
        (k) => html`<tr key=${k.id}><th scope="row" class="mono">${k.id}</th><td>${k.keyType}</td><td>${k.description}</td><td>${ago(k.created)}</td><td>${k.expires ? k.expires.slice(0, 10) : 'never'}</td>
          <td><button class="danger" aria-label=${`Revoke key ${k.id}`} onClick=${() => run(() => api.del(`/tailnet/-/keys/${k.id}`))}>Revoke</button></td></tr>`,
      )}</tbody>
    </table></div>
  </section>`;
}

function Webhooks() {
  const [hooks, setHooks] = useState([]);
  const [url, setUrl] = useState('');
  const [subs, setSubs] = useState(['nodeCreated', 'policyUpdate']);
  const [created, setCreated] = useState(null);
  const load = () => api.get('/tailnet/-/webhooks').then((r) => setHooks(Array.isArray(r) ? r : r.webhooks ?? []), (e) => setError(e.message));
  const [error, run, setError] = useRun(load);
  useEffect(() => void load(), []);
  const create = (e) => {
    e.preventDefault();
    run(async () => {
      setCreated(await api.post('/tailnet/-/webhooks', { endpointUrl: url, subscriptions: subs }));
      setUrl('');
    });
  };
  return html`<section class="card wide">
    <h2>Webhooks</h2>
    <${ErrorText} error=${error} />
    <form onSubmit=${create} aria-label="Add a webhook">
      <label>Endpoint URL<input type="url" required placeholder="https://hooks.example.com/meshward" value=${url} onInput=${(e) => setUrl(e.target.value)} /></label>
      <fieldset><legend>Events</legend>${EVENTS.map((ev) => html`<label class="check"><input type="checkbox" checked=${subs.includes(ev)} onChange=${() => setSubs(subs.includes(ev) ? subs.filter((s) => s !== ev) : [...subs, ev])} /> ${ev}</label>`)}</fieldset>
      <div class="buttons"><button type="submit" class="primary">Add webhook</button></div>
    </form>
    ${created?.secret && html`<${Secret} label="Signing secret" value=${created.secret} />`}
    <ul class="plain">${hooks.map(
      (h) => html`<li key=${h.endpointId}><span class="mono">${h.endpointUrl}</span> <span class="muted small">${h.subscriptions.join(', ')}</span>
        <button class="danger" aria-label=${`Delete webhook ${h.endpointUrl}`} onClick=${() => run(() => api.del(`/webhooks/${h.endpointId}`))}>Delete</button></li>`,
    )}</ul>
  </section>`;
}

function Billing({ me }) {
  const [b, setB] = useState(null);
  const [email, setEmail] = useState('');
  const load = () => api.get('/tailnet/-/billing').then((r) => (setB(r), setEmail(r.contact?.email ?? '')), (e) => setError(e.message));
  const [error, run, setError] = useRun(load);
  useEffect(() => void load(), []);
  return html`<section class="card wide">
    <h2>Billing</h2>
    <${ErrorText} error=${error} />
    <p>Plan: <strong>${b ? b.plan : '…'}</strong></p>
    ${can(me.user.role, 'billing:contact') &&
    html`<form class="row" onSubmit=${(e) => (e.preventDefault(), run(() => api.post('/tailnet/-/billing/contact', { email })))}>
      <label>Billing contact<input type="email" value=${email} onInput=${(e) => setEmail(e.target.value)} /></label><button type="submit">Save contact</button></form>`}
  </section>`;
}

export function Settings({ me }) {
  const role = me.user.role;
  return html`<section>
    <h1>Settings</h1>
    <${General} me=${me} />
    ${can(role, 'keys:auth') && html`<${Keys} me=${me} />`}
    ${can(role, 'webhooks:write') && html`<${Webhooks} />`}
    ${can(role, 'billing:read') && html`<${Billing} me=${me} />`}
  </section>`;
}
