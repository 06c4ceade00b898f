// The page an invite link opens: a device shared from another network (review, then Accept or Decline
// from your own network), or an invitation to join a network (set a password).
import { useEffect, useState } from 'preact/hooks';
import { api, session, setCsrf } from './api.js';
import { SignIn } from './signin.js';
import { ErrorText, html, Link, navigate } from './ui.js';

function DeviceInvite({ code, info, me, onSignedIn }) {
  const [done, setDone] = useState(null);
  const [error, setError] = useState('');
  const accept = async () => {
    setError('');
    try {
      const r = await api.post('/device-invites/-/accept', { invite: code });
      setDone({ accepted: true, name: r.device?.name ?? info.device.name });
    } catch (e) {
      setError(e.message);
    }
  };
  return html`<div class="card invite">
    <h1>${info.sharer.loginName} shared a device with you</h1>
    <dl>
      <dt>Device</dt><dd><span class="name">${info.device.name}</span></dd>
      <dt>Addresses</dt><dd class="mono">${info.device.addresses.join(', ')}</dd>
      <dt>OS</dt><dd>${info.device.os}</dd>
      <dt>Shared by</dt><dd>${info.sharer.displayName ? `${info.sharer.displayName} (${info.sharer.loginName})` : info.sharer.loginName}</dd>
      <dt>From network</dt><dd>${info.network}</dd>
      ${info.label && html`<dt>Label</dt><dd>${info.label}</dd>`}
    </dl>
    <p class="muted">If you accept, the device joins your network's machine list as an external machine. It can answer connections your network's policy allows, but never start one.</p>
    ${done?.accepted
      ? html`<p role="status" class="ok">Accepted: ${done.name} is now in your machines as External.</p>
          <${Link} href="/admin/machines" class="button primary">Go to Machines</${Link}>`
      : done
        ? html`<p role="status">You declined this invite; nothing was shared.</p>`
        : info.accepted
          ? html`<p class="error" role="alert">This invite was already accepted; ask ${info.sharer.loginName} for a new link.</p>`
          : me
            ? html`<p>Signed in as <strong>${me.user.loginName}</strong> in <strong>${me.tailnet.name}</strong>.</p>
                <${ErrorText} error=${error} />
                <div class="buttons"><button onClick=${() => setDone({ accepted: false })}>Decline</button><button class="primary" onClick=${accept}>Accept</button></div>`
            : html`<p>Sign in to your own network to accept it.</p><${SignIn} title="Sign in to accept" onSignedIn=${onSignedIn} />`}
  </div>`;
}

function UserInvite({ code, info, onSignedIn }) {
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const [name, setName] = useState('');
  const [error, setError] = useState('');
  const submit = async (e) => {
    e.preventDefault();
    setError('');
    if (password !== again) return setError('The two passwords differ.');
    try {
      await api.post('/user-invites/-/accept', { code, password, displayName: name || undefined });
      const me = await session.signIn(info.email, password, info.network);
      setCsrf(me.csrf);
      onSignedIn(me);
      navigate('/admin/machines');
    } catch (err) {
      setError(err.message);
    }
  };
  if (info.accepted) return html`<div class="card"><h1>This invite was already used</h1><p><${Link} href="/admin">Sign in</${Link}> instead.</p></div>`;
  return html`<form class="card signin" onSubmit=${submit}>
    <h1>Join ${info.network}</h1>
    <p>You are invited as <strong>${info.email}</strong> with the role <strong>${info.role}</strong>. Choose a password to finish.</p>
    <label>Name<input name="name" autocomplete="name" value=${name} onInput=${(e) => setName(e.target.value)} /></label>
    <label>Password<input type="password" autocomplete="new-password" minlength="10" required value=${password} onInput=${(e) => setPassword(e.target.value)} /></label>
    <label>Repeat password<input type="password" autocomplete="new-password" minlength="10" required value=${again} onInput=${(e) => setAgain(e.target.value)} /></label>
    <${ErrorText} error=${error} />
    <button type="submit" class="primary">Create account</button>
  </form>`;
}

function PasswordLink({ code, info, onSignedIn }) {
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const [error, setError] = useState('');
  const submit = async (e) => {
    e.preventDefault();
    setError('');
    if (password !== again) return setError('The two passwords differ.');
    try {
      await session.setPassword(code, password);
      const me = await session.signIn(info.email, password, info.network);
      setCsrf(me.csrf);
      onSignedIn(me);
      navigate('/admin/machines');
    } catch (err) {
      setError(err.message);
    }
  };
  if (!info.usable) return html`<div class="card"><h1>This link cannot be used</h1><p>It was used already, has expired, or ${info.email} is no longer the owner. <${Link} href="/admin">Sign in</${Link}> instead.</p></div>`;
  return html`<form class="card signin" onSubmit=${submit}>
    <h1>Set your password</h1>
    <p>You own <strong>${info.network}</strong> as <strong>${info.email}</strong>. Choose a password for the admin console; this link then stops working.</p>
    <label>Password<input type="password" autocomplete="new-password" minlength="10" required value=${password} onInput=${(e) => setPassword(e.target.value)} /></label>
    <label>Repeat password<input type="password" autocomplete="new-password" minlength="10" required value=${again} onInput=${(e) => setAgain(e.target.value)} /></label>
    <${ErrorText} error=${error} />
    <button type="submit" class="primary">Set password</button>
  </form>`;
}

export function InvitePage({ code, me, onSignedIn }) {
  const [info, setInfo] = useState(null);
  const [error, setError] = useState('');
  useEffect(() => {
    session.invite(code).then(setInfo, (e) => setError(e.message));
  }, [code]);
  if (error) return html`<div class="card"><h1>Invite not found</h1><p class="error" role="alert">${error}</p></div>`;
  if (!info) return html`<p>Loading…</p>`;
  if (info.kind === 'device') return html`<${DeviceInvite} code=${code} info=${info} me=${me} onSignedIn=${onSignedIn} />`;
  if (info.kind === 'password') return html`<${PasswordLink} code=${code} info=${info} onSignedIn=${onSignedIn} />`;
  return html`<${UserInvite} code=${code} info=${info} onSignedIn=${onSignedIn} />`;
}
