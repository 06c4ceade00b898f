// The admin console: a client of the admin API. What a role may do is decided by the API; the pages use
// the same role table (coord/roles.ts) only to leave out controls the API would refuse.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { can } from '../../coord/roles.ts';
import { session, setCsrf } from './api.js';
import { AccessControls } from './acls.js';
import { Dns } from './dns.js';
import { InvitePage } from './invite.js';
import { Logs } from './logs.js';
import { Machines } from './machines.js';
import { Settings } from './settings.js';
import { SignIn } from './signin.js';
import { html, Link, navigate, setNavigator } from './ui.js';
import { Users } from './users.js';

const PAGES = [
  { path: '/admin/machines', name: 'Machines', perm: 'machines:read', page: Machines },
  { path: '/admin/users', name: 'Users', perm: 'users:read', page: Users },
  { path: '/admin/acls', name: 'Access controls', perm: 'policy:read', page: AccessControls },
  { path: '/admin/dns', name: 'DNS', perm: 'network:read', page: Dns },
  { path: '/admin/logs', name: 'Logs', perm: 'audit:read', page: Logs },
  { path: '/admin/settings', name: 'Settings', perm: 'feature:read', page: Settings },
];

function Header({ me, onSignOut, current }) {
  const role = me.user.role;
  return html`<header class="top">
    <div class="brand">meshward <span class="network">${me.tailnet.name}</span></div>
    ${role !== 'member' &&
    html`<nav aria-label="Main"><ul>
      ${PAGES.filter((p) => can(role, p.perm)).map(
        (p) => html`<li><${Link} href=${p.path} aria-current=${current === p ? 'page' : undefined}>${p.name}</${Link}></li>`,
      )}
    </ul></nav>`}
    <div class="who"><span title=${me.user.role}>${me.user.loginName} · ${role}</span><button onClick=${onSignOut}>Sign out</button></div>
  </header>`;
}

function App() {
  const [path, setPath] = useState(location.pathname);
  const [me, setMe] = useState(undefined);
  const [error, setError] = useState('');
  useEffect(() => {
    setNavigator(setPath);
    const pop = () => setPath(location.pathname);
    addEventListener('popstate', pop);
    session.me().then((m) => {
      setCsrf(m && m.csrf);
      setMe(m);
    }, (e) => setError(e.message));
    return () => removeEventListener('popstate', pop);
  }, []);
  const signOut = async () => {
    try {
      await session.signOut();
    } finally {
      setCsrf('');
      setMe(null);
      navigate('/admin');
    }
  };
  if (error) return html`<main class="center"><p class="error" role="alert">${error}</p></main>`;
  if (me === undefined) return html`<main class="center"><p>Loading…</p></main>`;

  const invite = /^\/admin\/invite\/([^/]+)$/.exec(path);
  if (invite) {
    return html`${me && html`<${Header} me=${me} onSignOut=${signOut} />`}
      <main><${InvitePage} code=${decodeURIComponent(invite[1])} me=${me} onSignedIn=${(m) => setMe(m)} /></main>`;
  }
  if (!me) return html`<main class="center"><${SignIn} onSignedIn=${(m) => setMe(m)} /></main>`;
  if (me.user.role === 'member') {
    return html`<${Header} me=${me} onSignOut=${signOut} />
      <main class="center"><div class="card"><h1>You don't have access to the admin console</h1>
      <p>Your role in ${me.tailnet.name} is member. Ask an admin of your network if you need access.</p></div></main>`;
  }
  const page = PAGES.find((p) => path === p.path || path.startsWith(p.path + '/')) ?? PAGES[0];
  if (page.path !== path && !path.startsWith(page.path + '/')) history.replaceState(null, '', page.path);
  const Page = page.page;
  return html`<${Header} me=${me} onSignOut=${signOut} current=${page} />
    <main><${Page} me=${me} /></main>`;
}

render(html`<${App} />`, document.getElementById('app'));
