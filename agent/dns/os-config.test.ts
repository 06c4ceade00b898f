import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { nameserversOf, OsDns } from './os-config.js';

describe('OsDns with a plain resolv.conf', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  function setup(original: string | null) {
    const dir = mkdtempSync(join(tmpdir(), 'mw-osdns-'));
    dirs.push(dir);
    const conf = join(dir, 'resolv.conf');
    if (original !== null) writeFileSync(conf, original, { mode: 0o644 });
    return { dir, conf, state: join(dir, 'state') };
  }
  const ORIGINAL = '# made by the installer\nnameserver 192.0.2.1\nnameserver 2001:db8::1\noptions edns0 trust-ad\nsearch corp.example\n';

  it('points the file at the resolver, keeps the original, and puts it back byte for byte', () => {
    const { dir, conf } = setup(ORIGINAL);
    const os = new OsDns(dir, 'mw0', conf);
    const st = os.apply({ searchDomains: ['a.internal', 'b.internal'], allNames: false });
    expect(st).toMatchObject({ mode: 'file', applied: true });
    const now = readFileSync(conf, 'utf8');
    expect(now).toMatch(/^nameserver 100\.100\.100\.100$/m);
    expect(now).toMatch(/^search a\.internal b\.internal$/m);
    expect(os.systemResolvers()).toEqual(['192.0.2.1', '2001:db8::1']);
    // Applying again (new search domains) keeps the first original, not our own file.
    os.apply({ searchDomains: ['a.internal'], allNames: false });
    expect(statSync(join(dir, 'resolv.conf.orig')).mode & 0o777).toBe(0o600);
    os.restore();
    expect(readFileSync(conf, 'utf8')).toBe(ORIGINAL);
    expect(existsSync(join(dir, 'resolv.conf.orig'))).toBe(false);
  });

  it('after a crash, a new instance restores the original at start', () => {
    const { dir, conf } = setup(ORIGINAL);
    new OsDns(dir, 'mw0', conf).apply({ searchDomains: ['a.internal'], allNames: false });
    new OsDns(dir, 'mw0', conf).restore();
    expect(readFileSync(conf, 'utf8')).toBe(ORIGINAL);
  });

  it('never clobbers a file someone else rewrote meanwhile', () => {
    const { dir, conf } = setup(ORIGINAL);
    const os = new OsDns(dir, 'mw0', conf);
    os.apply({ searchDomains: [], allNames: false });
    writeFileSync(conf, 'nameserver 192.0.2.99\n');
    os.restore();
    expect(readFileSync(conf, 'utf8')).toBe('nameserver 192.0.2.99\n');
  });

  it('leaves a link to something it does not know alone, and says so', () => {
    const { dir, conf } = setup(null);
    writeFileSync(join(dir, 'elsewhere.conf'), ORIGINAL);
    symlinkSync(join(dir, 'elsewhere.conf'), conf);
    const st = new OsDns(dir, 'mw0', conf).apply({ searchDomains: [], allNames: false });
    expect(st).toMatchObject({ mode: 'unmanaged', applied: false });
    expect(st.detail).toMatch(/left alone/);
    expect(readFileSync(conf, 'utf8')).toBe(ORIGINAL);
  });

  it('reads the system resolvers from nameserver lines only', () => {
    expect(nameserversOf('nameserver 192.0.2.1\n#nameserver 192.0.2.2\nnameserver 100.100.100.100\nnameserver fe80::1%eth0\nnameserver bogus\n')).toEqual(['192.0.2.1', 'fe80::1%eth0']);
  });
});
