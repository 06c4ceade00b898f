import { useEffect, useState } from 'preact/hooks';
import { can } from '../../coord/roles.ts';
import { api } from './api.js';
import { ago, Avatar, Dialog, ErrorText, html } from './ui.js';

const short = (d) => d.name.split('.')[0];

/** The sharer's panel for one device: create a link, copy it (shown once), the links and who took them. */
function SharePanel({ device, onClose, onChanged }) {
  const [label, setLabel] = useState('');
  const [multiUse, setMultiUse] = useState(false);
  const [invites, setInvites] = useState([]);
  const [created, setCreated] = useState(null);
  const [copied, setCopied] = useState(false);
  const [error, setError] = useState('');
  const load = () =>
    api.get(`/device/${device.id}/device-invites`).then(
      (list) => setInvites(list),
      (e) => setError(e.message),
    );
  useEffect(() => {
    load();
    // The recipient may accept or remove at any time: keep the list current while the panel is open.
    const t = setInterval(load, 2000);
    return () => clearInterval(t);
  }, [device.id]);
  const create = async (e) => {
    e.preventDefault();
    setError('');
    try {
      const [inv] = await api.post(`/device/${device.id}/device-invites`, [{ label, ...(multiUse ? { multiUse } : {}) }]);
      setCreated(inv);
      setCopied(false);
      setLabel('');
      setMultiUse(false);
      load();
    } catch (err) {
      setError(err.message);
    }
  };
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(created.inviteUrl);
    } catch {
      const input = document.getElementById('invite-link');
      input.select();
      document.execCommand('copy');
    }
    setCopied(true);
  };
  const revoke = async (inv) => {
    setError('');
    try {
      await api.del(`/device-invites/${inv.id}`);
      await load();
      onChanged();
    } catch (err) {
      setError(err.message);
    }
  };
  const recipient = (user, shared) => {
    const who = user.loginName;
    return html`<${Avatar} who=${user.displayName || who} /><span class="email">${who}</span>
      ${shared ? html`<span class="badge shared">Shared</span>` : html`<span class="badge">Removed by recipient</span>`}`;
  };
  const state = (inv) => {
    if (!inv.accepted) return html`<span class="muted">Not accepted yet</span>`;
    if (!inv.multiUse) return recipient(inv.acceptedBy, inv.shared);
    return html`<ul class="recipients" aria-label=${`Accepted ${inv.label || 'link'}`}>
      ${inv.acceptances.map((a) => html`<li key=${a.id}>${recipient(a, a.shared)}</li>`)}
    </ul>`;
  };
  // A multi-use link stays usable (and revocable) after it was accepted; a one-time link while its share is on.
  const revocable = (inv) => inv.multiUse || !inv.accepted || inv.shared;
  return html`<${Dialog} title=${`Share ${short(device)}`} onClose=${onClose}>
    <p class="muted">Anyone with a link can ask for access from their own network. A link works once, unless it is made for several people: then each who accepts gets access, until you revoke the link (which ends all their access).</p>
    <form class="row" onSubmit=${create}>
      <label>Label<input name="label" maxlength="200" placeholder="e.g. for Bob at Example Inc." value=${label} onInput=${(e) => setLabel(e.target.value)} /></label>
      <label class="check"><input type="checkbox" name="multiUse" checked=${multiUse} onChange=${(e) => setMultiUse(e.target.checked)} />Can be used by several people</label>
      <button type="submit" class="primary">Create link</button>
    </form>
    ${created &&
    html`<div class="created">
      <label>Invite link<input id="invite-link" readonly value=${created.inviteUrl} onFocus=${(e) => e.target.select()} /></label>
      <button onClick=${copy}>Copy link</button>
      <span role="status">${copied ? 'Copied' : 'Shown once: copy it now.'}</span>
    </div>`}
    <${ErrorText} error=${error} />
    <h3>Links</h3>
    ${invites.length === 0
      ? html`<p class="muted">No links yet.</p>`
      : html`<ul class="invites" aria-label="Share links">
          ${invites.map(
            (inv) => html`<li key=${inv.id}>
              <span class="label">${inv.label || '(no label)'}</span>
              ${inv.multiUse && html`<span class="badge">Several people</span>`}
              <span class="who">${state(inv)}</span>
              ${revocable(inv) &&
              html`<button aria-label=${`Revoke ${inv.label || 'link'}`} onClick=${() => revoke(inv)}>Revoke</button>`}
            </li>`,
          )}
        </ul>`}
  </${Dialog}>`;
}

function FieldDialog({ title, label, initial, onSave, onClose }) {
  const [value, setValue] = useState(initial);
  const [error, setError] = useState('');
  const submit = async (e) => {
    e.preventDefault();
    try {
      await onSave(value);
      onClose();
    } catch (err) {
      setError(err.message);
    }
  };
  return html`<${Dialog} title=${title} onClose=${onClose}>
    <form onSubmit=${submit}>
      <label>${label}<input value=${value} onInput=${(e) => setValue(e.target.value)} /></label>
      <${ErrorText} error=${error} />
      <div class="buttons"><button type="button" onClick=${onClose}>Cancel</button><button type="submit" class="primary">Save</button></div>
    </form>
  </${Dialog}>`;
}

function ConfirmDialog({ title, text, action, onConfirm, onClose }) {
  const [error, setError] = useState('');
  const go = async () => {
    try {
      await onConfirm();
      onClose();
    } catch (err) {
      setError(err.message);
    }
  };
  return html`<${Dialog} title=${title} onClose=${onClose}>
    <p>${text}</p>
    <${ErrorText} error=${error} />
    <div class="buttons"><button onClick=${onClose}>Cancel</button><button class="danger" onClick=${go}>${action}</button></div>
  </${Dialog}>`;
}

function ActionsMenu({ device, items }) {
  const [open, setOpen] = useState(false);
  const id = `menu-${device.id}`;
  useEffect(() => {
    if (!open) return;
    const close = (e) => !e.target.closest(`#${id}-wrap`) && setOpen(false);
    document.addEventListener('click', close);
    return () => document.removeEventListener('click', close);
  }, [open]);
  return html`<div class="menu-wrap" id=${`${id}-wrap`} onKeyDown=${(e) => e.key === 'Escape' && setOpen(false)}>
    <button class="icon" aria-label=${`Actions for ${short(device)}`} aria-haspopup="menu" aria-expanded=${open} aria-controls=${id} onClick=${() => setOpen(!open)}>⋯</button>
    ${open &&
    html`<ul class="menu" role="menu" id=${id}>
      ${items.map(
        ([name, fn]) => html`<li role="none"><button role="menuitem" onClick=${() => (setOpen(false), fn())}>${name}</button></li>`,
      )}
    </ul>`}
  </div>`;
}

export function Machines({ me }) {
  const role = me.user.role;
  const [devices, setDevices] = useState(null);
  const [sharedOut, setSharedOut] = useState(new Set());
  const [dialog, setDialog] = useState(null);
  const [error, setError] = useState('');
  const load = async () => {
    try {
      const { devices } = await api.get('/tailnet/-/devices');
      setDevices(devices);
      if (can(role, 'share')) {
        const own = devices.filter((d) => !d.isExternal);
        const shared = await Promise.all(
          own.map((d) => api.get(`/device/${d.id}/device-invites`).then((l) => (l.some((i) => i.shared) ? d.id : null), () => null)),
        );
        setSharedOut(new Set(shared.filter(Boolean)));
      }
    } catch (e) {
      setError(e.message);
    }
  };
  useEffect(() => {
    load();
    const t = setInterval(load, 5000);
    return () => clearInterval(t);
  }, []);
  const close = () => {
    setDialog(null);
    load();
  };
  const itemsFor = (d) => {
    const items = [];
    if (d.isExternal) {
      if (can(role, 'machines:write'))
        items.push(['Remove', () => setDialog({ kind: 'confirm', title: `Remove ${short(d)}`, action: 'Remove', text: `${d.name} was shared with your network by ${d.user}. Removing it ends the share for your network; the device stays in its own network.`, run: () => api.del(`/device/${d.id}`) })]);
      return items;
    }
    if (can(role, 'share')) items.push(['Share…', () => setDialog({ kind: 'share', device: d })]);
    if (can(role, 'machines:write')) {
      items.push(['Rename…', () => setDialog({ kind: 'field', title: `Rename ${short(d)}`, label: 'Machine name', initial: short(d), run: (name) => api.post(`/device/${d.id}/name`, { name }) })]);
      if (!d.authorized) items.push(['Approve', () => api.post(`/device/${d.id}/authorized`, { authorized: true }).then(load, (e) => setError(e.message))]);
      items.push(['Expire key', () => setDialog({ kind: 'confirm', title: `Expire the key of ${short(d)}`, action: 'Expire key', text: 'The device must sign in again to reconnect.', run: () => api.post(`/device/${d.id}/expire`) })]);
    }
    if (can(role, 'device-tags:write'))
      items.push(['Edit tags…', () => setDialog({ kind: 'field', title: `Tags of ${short(d)}`, label: 'Tags (comma-separated)', initial: d.tags.join(', '), run: (v) => api.post(`/device/${d.id}/tags`, { tags: v.split(',').map((s) => s.trim()).filter(Boolean) }) })]);
    if (can(role, 'network:write') && d.advertisedRoutes.length > 0)
      items.push(['Edit routes…', () => setDialog({ kind: 'field', title: `Routes of ${short(d)}`, label: `Approved routes (advertised: ${d.advertisedRoutes.join(', ')})`, initial: d.enabledRoutes.join(', '), run: (v) => api.post(`/device/${d.id}/routes`, { routes: v.split(',').map((s) => s.trim()).filter(Boolean) }) })]);
    if (can(role, 'machines:write'))
      items.push(['Remove', () => setDialog({ kind: 'confirm', title: `Remove ${short(d)}`, action: 'Remove', text: `${d.name} leaves the network and every share of it ends.`, run: () => api.del(`/device/${d.id}`) })]);
    return items;
  };
  return html`<section>
    <h1>Machines</h1>
    <${ErrorText} error=${error} />
    ${devices === null
      ? html`<p>Loading…</p>`
      : html`<div class="table-wrap"><table>
      <thead><tr><th scope="col">Machine</th><th scope="col">Addresses</th><th scope="col">Owner</th><th scope="col">Tags</th><th scope="col">OS</th><th scope="col">Last seen</th><th scope="col">Status</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>
        ${devices.length === 0 && html`<tr><td colspan="8" class="muted">No machines yet: add one with <code>agent up --authkey …</code>.</td></tr>`}
        ${devices.map((d) => {
          const items = itemsFor(d);
          return html`<tr key=${d.id}>
            <th scope="row"><span class="name">${short(d)}</span>
              ${d.isExternal && html` <span class="badge external">External</span>`}
              ${sharedOut.has(d.id) && html` <span class="badge shared" title="Shared with users of other networks">Shared out</span>`}
              ${!d.authorized && html` <span class="badge warn">Needs approval</span>`}
              <div class="muted small">${d.name}</div></th>
            <td>${d.addresses.map((a) => html`<div class="mono">${a}</div>`)}</td>
            <td>${d.user}</td>
            <td>${d.tags.map((t) => html`<span class="tag">${t}</span> `)}</td>
            <td>${d.os}</td>
            <td>${d.connectedToControl ? 'now' : ago(d.lastSeen)}</td>
            <td>${d.connectedToControl ? html`<span class="dot on"></span>Connected` : html`<span class="dot"></span>Offline`}</td>
            <td>${items.length > 0 && html`<${ActionsMenu} device=${d} items=${items} />`}</td>
          </tr>`;
        })}
      </tbody></table></div>`}
    ${dialog?.kind === 'share' && html`<${SharePanel} device=${dialog.device} onClose=${close} onChanged=${load} />`}
    ${dialog?.kind === 'field' && html`<${FieldDialog} ...${dialog} onSave=${dialog.run} onClose=${close} />`}
    ${dialog?.kind === 'confirm' && html`<${ConfirmDialog} ...${dialog} onConfirm=${dialog.run} onClose=${close} />`}
  </section>`;
}
