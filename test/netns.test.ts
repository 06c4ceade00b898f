// The virtual LAN the end-to-end tests and the demo stand on: hosts reach each other and nothing is
// left behind.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualLan } from '../scripts/netns.js';

// Making namespaces, bridges and veth pairs needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN).
const isRoot = process.getuid?.() === 0;
const title = isRoot ? 'virtual LAN of network namespaces' : 'virtual LAN of network namespaces (skipped: needs root to make namespaces)';

describe.skipIf(!isRoot)(title, () => {
  let lan: VirtualLan;
  beforeAll(() => {
    lan = VirtualLan.create();
  });
  afterAll(() => lan?.destroy());

  it('connects hosts through the bridge', () => {
    const a = lan.addHost('a', 2);
    lan.addHost('b', 3);
    const out = lan.exec('b', 'ping', ['-c', '1', '-W', '2', a.addr]);
    expect(out).toMatch(/1 received/);
  });

  it('removes every namespace, link and process it made', async () => {
    const other = VirtualLan.create();
    other.addHost('x', 2);
    const sleeper = other.spawn('x', 'sleep', ['60']);
    other.destroy();
    other.destroy();
    await new Promise((r) => sleeper.exitCode !== null || sleeper.signalCode ? r(null) : sleeper.once('exit', r));
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(`mw-${other.id}-`);
    expect(execFileSync('ip', ['link', 'show'], { encoding: 'utf8' })).not.toContain(other.bridge);
  });
});
