import { useEffect, useState } from 'preact/hooks';
import { api } from './api.js';
import { ErrorText, html } from './ui.js';

/** The configuration audit log, newest first, filterable by any text in an entry. */
export function Logs() {
  const [logs, setLogs] = useState(null);
  const [filter, setFilter] = useState('');
  const [error, setError] = useState('');
  useEffect(() => {
    api.get('/tailnet/-/logging/configuration').then((r) => setLogs(r.logs.slice().reverse()), (e) => setError(e.message));
  }, []);
  const f = filter.toLowerCase();
  const shown = (logs ?? []).filter((e) => !f || JSON.stringify(e).toLowerCase().includes(f));
  return html`<section>
    <h1>Logs</h1>
    <${ErrorText} error=${error} />
    <label class="filter">Filter<input type="search" value=${filter} onInput=${(e) => setFilter(e.target.value)} /></label>
    <div class="table-wrap"><table>
      <thead><tr><th scope="col">Time</th><th scope="col">Actor</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Change</th></tr></thead>
      <tbody>${shown.map(
        (e) => html`<tr>
          <td class="mono small">${e.eventTime.replace('T', ' ').slice(0, 19)}</td>
          <td>${e.actor.loginName}</td>
          <td>${e.action}</td>
          <td>${e.target.type} ${e.target.name}${e.target.property ? ` (${e.target.property})` : ''}</td>
          <td class="mono small change">${e.old !== undefined ? JSON.stringify(e.old) : ''}${e.old !== undefined && e.new !== undefined ? ' → ' : ''}${e.new !== undefined ? JSON.stringify(e.new) : ''}</td>
        </tr>`,
      )}</tbody>
    </table></div>
  </section>`;
}
