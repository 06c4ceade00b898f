import { useEffect, useState } from 'preact/hooks';
import { can } from '../../coord/roles.ts';
import { api } from './api.js';
import { ago, Avatar, ErrorText, html } from './ui.js';

const ROLES = ['owner', 'admin', 'network-admin', 'it-admin', 'billing-admin', 'auditor', 'member'];

/** Users with their roles; invite, change role, suspend, restore, remove. The API decides each change. */
export function Users({ me }) {
  const writer = can(me.user.role, 'users:write');
  const inviter = can(me.user.role, 'provisioning:write');
  const [users, setUsers] = useState(null);
  const [shared, setShared] = useState([]);
  const [error, setError] = useState('');
  const [email, setEmail] = useState('');
  const [role, setRole] = useState('member');
  const [link, setLink] = useState(null);
  const load = async () => {
    try {
      setUsers((await api.get('/tailnet/-/users')).users);
      setShared((await api.get('/tailnet/-/users?type=shared')).users);
    } catch (e) {
      setError(e.message);
    }
  };
  useEffect(() => void load(), []);
  const run = async (fn) => {
    setError('');
    try {
      await fn();
    } catch (e) {
      setError(e.message);
    }
    load();
  };
  const invite = (e) => {
    e.preventDefault();
    run(async () => {
      const [inv] = await api.post('/tailnet/-/user-invites', [{ email, role }]);
      setLink(inv);
      setEmail('');
    });
  };
  const changeRole = (u, next) => {
    if (next === 'owner' && !confirm(`Make ${u.loginName} the owner? You will become an admin.`)) return load();
    run(() => api.post(`/users/${u.id}/role`, { role: next }));
  };
  return html`<section>
    <h1>Users</h1>
    <${ErrorText} error=${error} />
    ${inviter &&
    html`<form class="row card" onSubmit=${invite} aria-label="Invite a user">
      <label>Email<input type="email" required value=${email} onInput=${(e) => setEmail(e.target.value)} /></label>
      <label>Role<select value=${role} onChange=${(e) => setRole(e.target.value)}>${ROLES.filter((r) => r !== 'owner').map((r) => html`<option value=${r}>${r}</option>`)}</select></label>
      <button type="submit" class="primary">Invite user</button>
    </form>`}
    ${link && html`<p role="status" class="created">Invite link for ${link.email} (shown once): <input readonly aria-label="User invite link" value=${link.inviteUrl} onFocus=${(e) => e.target.select()} /></p>`}
    ${users === null
      ? html`<p>Loading…</p>`
      : html`<div class="table-wrap"><table>
      <thead><tr><th scope="col">User</th><th scope="col">Role</th><th scope="col">Type</th><th scope="col">Status</th><th scope="col">Machines</th><th scope="col">Last seen</th>${writer && html`<th scope="col"><span class="sr-only">Actions</span></th>`}</tr></thead>
      <tbody>
        ${[...users, ...shared].map(
          (u) => html`<tr key=${u.id + u.type}>
            <th scope="row"><${Avatar} who=${u.displayName || u.loginName} /> ${u.displayName} <div class="muted small">${u.loginName}</div></th>
            <td>${writer && u.type === 'member'
              ? html`<select aria-label=${`Role of ${u.loginName}`} value=${u.role} onChange=${(e) => changeRole(u, e.target.value)}>${ROLES.map((r) => html`<option value=${r}>${r}</option>`)}</select>`
              : u.role}</td>
            <td>${u.type}</td>
            <td>${u.status}</td>
            <td>${u.deviceCount}</td>
            <td>${ago(u.lastSeen)}</td>
            ${writer &&
            html`<td class="buttons">${u.type === 'member' && html`
              ${u.status === 'suspended'
                ? html`<button onClick=${() => run(() => api.post(`/users/${u.id}/restore`))} aria-label=${`Restore ${u.loginName}`}>Restore</button>`
                : html`<button onClick=${() => run(() => api.post(`/users/${u.id}/suspend`))} aria-label=${`Suspend ${u.loginName}`}>Suspend</button>`}
              <button class="danger" onClick=${() => confirm(`Remove ${u.loginName}?`) && run(() => api.post(`/users/${u.id}/delete`))} aria-label=${`Remove ${u.loginName}`}>Remove</button>`}</td>`}
          </tr>`,
        )}
      </tbody></table></div>`}
  </section>`;
}
