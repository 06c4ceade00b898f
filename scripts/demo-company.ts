// The demo's company: who works there, which devices and services it has, its policy file, and the
// live change the demo makes. Only data; scripts/demo.ts builds and checks it.

export const NETWORK = 'example.com';
export const OWNER = 'pat@example.com';

export interface Person {
  email: string;
  job: string;
}

/** The president owns the network (created with it); the others are invited as members. */
export const PEOPLE: Person[] = [
  { email: OWNER, job: 'president' },
  { email: 'dave@example.com', job: 'engineer' },
  { email: 'bob@example.com', job: 'accountant' },
];

export interface DemoDevice {
  /** Host name on the network, and the name of its namespace on the virtual LAN. */
  name: string;
  /** A laptop belongs to its user; a server carries tags instead. */
  user?: string;
  tags?: string[];
  /** Its address on the virtual LAN: 198.18.x.N. */
  lanHost: number;
  what: string;
}

export const DEVICES: DemoDevice[] = [
  { name: 'dave-laptop', user: 'dave@example.com', lanHost: 2, what: "Dave's laptop (engineer)" },
  { name: 'bob-laptop', user: 'bob@example.com', lanHost: 3, what: "Bob's laptop (accountant)" },
  { name: 'pat-laptop', user: OWNER, lanHost: 4, what: "Pat's laptop (president)" },
  { name: 'git', tags: ['tag:engineering'], lanHost: 10, what: 'the engineering git server' },
  { name: 'ci', tags: ['tag:ci'], lanHost: 11, what: 'the CI server' },
  { name: 'accounting', tags: ['tag:accounting'], lanHost: 12, what: 'the accounting server' },
];

export interface Service {
  /** Column id, "device:port". */
  id: string;
  device: string;
  port: number;
  label: string;
}

/** The table's columns: a TCP listener on each of these. */
export const SERVICES: Service[] = [
  { id: 'git:22', device: 'git', port: 22, label: 'git ssh' },
  { id: 'git:80', device: 'git', port: 80, label: 'git web' },
  { id: 'ci:443', device: 'ci', port: 443, label: 'ci web' },
  { id: 'accounting:443', device: 'accounting', port: 443, label: 'books web' },
  { id: 'accounting:22', device: 'accounting', port: 22, label: 'books ssh' },
];

const RULES = `  "acls": [
    // Engineers use the git server (ssh and web) and the CI server's web interface.
    {"action": "accept", "src": ["group:engineering"], "dst": ["tag:engineering:22,80", "tag:ci:443"]},
    // The CI server fetches code from the git server.
    {"action": "accept", "src": ["tag:ci"], "dst": ["tag:engineering:22"]},
    // Accountants use the books on the accounting server, through its web interface only.
    {"action": "accept", "src": ["group:accounting"], "dst": ["tag:accounting:443"]},
    // People of other networks the git server is shared with may clone over ssh.
    {"action": "accept", "src": ["autogroup:shared"], "dst": ["tag:engineering:22"]},
__EXTRA__  ],`;

/** The company's policy file (HuJSON). `extraAcl` is one more ACL line, for the live change. */
export function companyPolicy(extraAcl?: { comment: string; rule: string }): string {
  const extra = extraAcl ? `    // ${extraAcl.comment}\n    ${extraAcl.rule},\n` : '';
  return `// The policy file of ${NETWORK} (Tailscale's syntax): deny by default, then these rules.
{
  "groups": {
    "group:engineering": ["dave@example.com"],
    "group:accounting": ["bob@example.com"],
  },

  // Names for addresses: the whole address range of the network.
  "hosts": {
    "company": "100.64.0.0/10",
  },

  // Who may put which tag on a server (the owner and admins may use any tag).
  "tagOwners": {
    "tag:engineering": ["group:engineering"],
    "tag:ci": ["group:engineering"],
    "tag:accounting": ["group:accounting"],
  },

${RULES.replace('__EXTRA__', extra)}

  "grants": [
    // The president may open every web interface in the company.
    {"src": ["${OWNER}"], "dst": ["company"], "ip": ["tcp:80", "tcp:443"]},
  ],

  // Checked on every change: a policy that breaks one of these is refused and the old one stays.
  "tests": [
    {"src": "dave@example.com", "accept": ["tag:engineering:22", "tag:ci:443"], "deny": ["tag:accounting:443"]},
    {"src": "bob@example.com", "accept": ["tag:accounting:443"], "deny": ["tag:engineering:22", "tag:accounting:22"]},
    {"src": "${OWNER}", "accept": ["tag:accounting:443", "tag:engineering:80"], "deny": ["tag:accounting:22"]},
  ],
}
`;
}

/** The live change: accountants get the CI server's web interface (its cost reports). */
export const LIVE_CHANGE = {
  story: 'Bob needs the CI cost reports: the accountants get the CI web interface',
  comment: 'Accountants read the CI cost reports (added live by the demo).',
  rule: '{"action": "accept", "src": ["group:accounting"], "dst": ["tag:ci:443"]}',
  from: 'bob-laptop',
  service: 'ci:443',
};

/** The second network, which receives a share of the git server. */
export const PARTNER = {
  network: 'partner.example',
  owner: 'erin@partner.example',
  device: { name: 'erin-laptop', lanHost: 20 },
  sharedDevice: 'git',
};
