import { useState } from 'preact/hooks';
import { session, setCsrf } from './api.js';
import { ErrorText, html } from './ui.js';

/** Email and password (and the network, when that email signs in to several). */
export function SignIn({ onSignedIn, title = 'Sign in to meshward' }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [network, setNetwork] = useState('');
  const [needNetwork, setNeedNetwork] = useState(false);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      const me = await session.signIn(email, password, network || undefined);
      setCsrf(me.csrf);
      onSignedIn(me);
    } catch (err) {
      if (err.data && err.data.needNetwork) setNeedNetwork(true);
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="card signin" onSubmit=${submit}>
    <h1>${title}</h1>
    <label>Email<input type="email" name="email" autocomplete="username" required value=${email} onInput=${(e) => setEmail(e.target.value)} /></label>
    <label>Password<input type="password" name="password" autocomplete="current-password" required value=${password} onInput=${(e) => setPassword(e.target.value)} /></label>
    ${needNetwork && html`<label>Network<input name="network" required value=${network} onInput=${(e) => setNetwork(e.target.value)} /></label>`}
    <${ErrorText} error=${error} />
    <button type="submit" class="primary" disabled=${busy}>Sign in</button>
  </form>`;
}
