import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

function run(program: 'agent' | 'coord', args: string[]) {
  return spawnSync(process.execPath, [`${root}dist/${program}/main.js`, ...args], { encoding: 'utf8' });
}

describe.each(['agent', 'coord'] as const)('%s command line', (program) => {
  it('prints usage and exits 2 on an unknown subcommand', () => {
    const r = run(program, ['frobnicate']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`unknown command "frobnicate"`);
    expect(r.stderr).toContain(`usage: ${program} <command>`);
  });

  it('prints usage and exits 2 without a subcommand', () => {
    const r = run(program, []);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`usage: ${program} <command>`);
  });

  it('prints usage and exits 0 for --help', () => {
    const r = run(program, ['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`usage: ${program} <command>`);
  });
});

describe('agent command line without a daemon', () => {
  it('says the daemon is not running and how to start it', () => {
    const r = run('agent', ['status', '--socket', '/nonexistent/agent.sock']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/agent is not running.*systemctl start meshward-agent/);
  });

  it('checks tags locally before asking the daemon', () => {
    const r = run('agent', ['up', '--advertise-tags', 'tag:ok,bad tag', '--socket', '/nonexistent/agent.sock']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('invalid tag "bad tag"');
    expect(r.stderr).toContain('usage: agent up');
  });
});
