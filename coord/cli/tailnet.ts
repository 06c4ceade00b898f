// `coord tailnet create NAME --owner EMAIL`: creates a tailnet in the database and prints the owner's
// first API key and a one-time link to set the owner's password for the admin console (once).
// `coord tailnet list`. These work on the database directly (on the server).
import { parseFlags, UsageError, type Command } from '../../wire/cli.js';
import { printable, printableText } from '../../wire/printable.js';
import { createOwnerPasswordCode, OWNER_LINK_DAYS } from '../console/owner-link.js';
import { checkTailnetName, createTailnet, listTailnets } from '../domain/index.js';
import { Conflict, InvalidInput } from '../errors.js';
import { Store } from '../store/index.js';
import { checkEmail, DEFAULT_DB } from './common.js';

export const tailnetCommand: Command = {
  usage: 'tailnet create NAME --owner EMAIL [--db FILE] [--public-url URL] [--json] | tailnet list [--db FILE] [--json]',
  summary: 'create or list networks (on the server, against its database)',
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === 'create') {
      const { values, positionals } = parseFlags(rest, {
        owner: { type: 'string' }, db: { type: 'string', default: DEFAULT_DB }, json: { type: 'boolean' },
        // Where people reach coord (as `coord serve --public-url`); the default is coord serve's own default.
        'public-url': { type: 'string', default: 'http://127.0.0.1:8080' },
      }, 1);
      const name = positionals[0];
      if (!name) throw new UsageError('missing network NAME (e.g. coord tailnet create example.com --owner alice@example.com)');
      try {
        checkTailnetName(name);
      } catch (err) {
        if (err instanceof InvalidInput) throw new UsageError(err.message);
        throw err;
      }
      if (!values.owner) throw new UsageError('missing --owner EMAIL: every network has exactly one owner');
      const owner = checkEmail('--owner', values.owner);
      const store = new Store(values.db!);
      try {
        const made = store.tx(() => {
          const m = createTailnet(store, name, owner);
          return { ...m, code: createOwnerPasswordCode(store, m.owner) };
        });
        const { tailnet, apiKey, apiKeyExpires } = made;
        const passwordUrl = `${values['public-url']!.replace(/\/+$/, '')}/admin/invite/${made.code}`;
        if (values.json) {
          process.stdout.write(JSON.stringify({ tailnet: tailnet.name, domain: tailnet.domain, owner, apiKey: apiKey.secret, apiKeyExpires, passwordUrl }) + '\n');
        } else {
          process.stdout.write(printableText(
            `created network ${tailnet.name} (domain ${tailnet.domain}) owned by ${owner}\n` +
              `owner's API key (shown only now; keep it secret; expires ${apiKeyExpires}): ${apiKey.secret}\n` +
              `owner's one-time link to set a password for the admin console (valid ${OWNER_LINK_DAYS} days): ${passwordUrl}\n`,
          ));
        }
        return 0;
      } catch (err) {
        if (err instanceof Conflict) {
          process.stderr.write(`coord tailnet create: ${printable(err.message)}\n`);
          return 1;
        }
        throw err;
      } finally {
        store.close();
      }
    }
    if (sub === 'list') {
      const { values } = parseFlags(rest, { db: { type: 'string', default: DEFAULT_DB }, json: { type: 'boolean' } });
      const store = new Store(values.db!);
      try {
        const list = listTailnets(store);
        if (values.json) process.stdout.write(JSON.stringify({ tailnets: list }) + '\n');
        else for (const t of list) process.stdout.write(printable(`${t.name}\t${t.domain}\t${t.users} users\t${t.devices} devices`) + '\n');
        return 0;
      } finally {
        store.close();
      }
    }
    throw new UsageError(sub ? `unknown tailnet subcommand "${sub}" (create or list)` : 'missing subcommand: create or list');
  },
};
