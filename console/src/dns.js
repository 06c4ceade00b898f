// DNS: MagicDNS, global nameservers and search domains. Read-only for roles without network:write.
import { useEffect, useState } from 'preact/hooks';
import { can } from '../../coord/roles.ts';
import { api } from './api.js';
import { ErrorText, html } from './ui.js';

const list = (s) => s.split(/[\s,]+/).filter(Boolean);

export function Dns({ me }) {
  const writer = can(me.user.role, 'network:write');
  const [magic, setMagic] = useState(null);
  const [servers, setServers] = useState('');
  const [paths, setPaths] = useState('');
  const [error, setError] = useState('');
  const [saved, setSaved] = useState('');
  const load = async () => {
    try {
      setMagic((await api.get('/tailnet/-/dns/preferences')).magicDNS);
      setServers((await api.get('/tailnet/-/dns/nameservers')).dns.join('\n'));
      setPaths((await api.get('/tailnet/-/dns/searchpaths')).searchPaths.join('\n'));
    } catch (e) {
      setError(e.message);
    }
  };
  useEffect(() => void load(), []);
  const run = async (fn, what) => {
    setError('');
    setSaved('');
    try {
      await fn();
      setSaved(what);
    } catch (e) {
      setError(e.message);
    }
    load();
  };
  if (magic === null) return html`<section><h1>DNS</h1><${ErrorText} error=${error} /></section>`;
  return html`<section>
    <h1>DNS</h1>
    <${ErrorText} error=${error} />
    ${saved && html`<p class="ok" role="status">${saved}</p>`}
    <section class="card wide">
      <h2>MagicDNS</h2>
      <p>Devices reach each other by name: <span class="mono">host.${me.tailnet.domain}</span>. Shared-in devices answer only to their full name in the sharer's domain.</p>
      <p>MagicDNS is <strong>${magic ? 'on' : 'off'}</strong>.</p>
      ${writer && html`<button onClick=${() => run(() => api.post('/tailnet/-/dns/preferences', { magicDNS: !magic }), `MagicDNS turned ${magic ? 'off' : 'on'}.`)}>${magic ? 'Disable MagicDNS' : 'Enable MagicDNS'}</button>`}
    </section>
    <section class="card wide">
      <h2>Nameservers</h2>
      <label>Global nameservers (one per line)<textarea rows="3" readOnly=${!writer} value=${servers} onInput=${(e) => setServers(e.target.value)}></textarea></label>
      <label>Search domains (one per line)<textarea rows="3" readOnly=${!writer} value=${paths} onInput=${(e) => setPaths(e.target.value)}></textarea></label>
      ${writer &&
      html`<div class="buttons"><button class="primary" onClick=${() =>
        run(async () => {
          await api.post('/tailnet/-/dns/nameservers', { dns: list(servers) });
          await api.post('/tailnet/-/dns/searchpaths', { searchPaths: list(paths) });
        }, 'DNS settings saved.')}>Save</button></div>`}
    </section>
  </section>`;
}
