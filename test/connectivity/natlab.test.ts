// netcheck behind real NAT: home routers in network namespaces (scripts/natlab.ts) with nftables
// masquerade, endpoint-independent and symmetric; coord's STUN server and a relay in the root namespace
// on the WAN. A separate process in each host's namespace runs the netcheck (scripts/netcheck-once.ts).
import { execFile, execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NetcheckReport } from '../../agent/connectivity/netcheck.js';
import { RelayServer } from '../../coord/relay/server.js';
import { StunServer } from '../../coord/stun.js';
import { NatLab } from '../../scripts/natlab.js';
import { root } from '../coord/harness.js';

const pexec = promisify(execFile);
const script = join(root, 'dist/scripts/netcheck-once.js');

describe('netcheck behind NAT routers', () => {
  let lab: NatLab;
  let stun: StunServer;
  let relay: RelayServer;
  let http: Server;
  let args: string[];

  beforeAll(async () => {
    lab = NatLab.create();
    lab.addRouter('home', 'endpoint-independent');
    lab.addLanHost('home', 'laptop', 10);
    lab.addRouter('carrier', 'symmetric');
    lab.addLanHost('carrier', 'phone', 10);
    lab.addWanHost('server');
    stun = await StunServer.start({ host: lab.wanGateway, port: 0 });
    http = createServer();
    relay = new RelayServer({ authorizer: { mayConnect: () => true, maySend: () => false } });
    relay.attach(http);
    await new Promise<void>((r) => http.listen(0, lab.wanGateway, r));
    const [p1, p2] = stun.ports;
    args = [script, '--stun', `${lab.wanGateway}:${p1}`, '--stun', `${lab.wanGateway}:${p2}`,
      '--relay', `coord=ws://${lab.wanGateway}:${(http.address() as AddressInfo).port}/relay`, '--port', '41641'];
  });

  afterAll(async () => {
    relay?.close();
    http?.closeAllConnections();
    await new Promise((r) => (http ? http.close(r) : r(null)));
    stun?.close();
    lab?.destroy();
  });

  async function netcheckIn(host: string): Promise<NetcheckReport> {
    const { stdout } = await pexec('ip', ['netns', 'exec', lab.host(host).ns, process.execPath, ...args], { timeout: 20_000 });
    return JSON.parse(stdout) as NetcheckReport;
  }

  it('behind endpoint-independent NAT: one public endpoint on the router, mapping does not vary', async () => {
    const r = await netcheckIn('laptop');
    expect(r.udp).toBe(true);
    expect(r.publicEndpoints).toEqual([`${lab.host('home').addr}:41641`]); // masquerade keeps the port when it can
    expect(r.mappingVariesByDest).toBe(false);
    expect(r.relays[0]!.name).toBe('coord');
    expect(r.relays[0]!.latencyMs).toBeGreaterThan(0);
    expect(r.preferredRelay).toBe('coord');
  });

  it('behind symmetric NAT (masquerade random): two mappings, mapping varies by destination', async () => {
    const r = await netcheckIn('phone');
    expect(r.udp).toBe(true);
    expect(r.mappingVariesByDest).toBe(true);
    expect(r.publicEndpoints).toHaveLength(2);
    for (const e of r.publicEndpoints) expect(e.startsWith(`${lab.host('carrier').addr}:`)).toBe(true);
    expect(r.preferredRelay).toBe('coord'); // the relay over TCP works through any NAT
  });

  it('with a public address: the endpoint is the host itself', async () => {
    const r = await netcheckIn('server');
    expect(r.publicEndpoints).toEqual([`${lab.host('server').addr}:41641`]);
    expect(r.mappingVariesByDest).toBe(false);
  });

  it('routers drop unsolicited packets from the WAN and let replies in', async () => {
    // The LAN host reaches the WAN; the WAN cannot reach the router or anything behind it unasked, even
    // with a route to the LAN through the router.
    const home = lab.host('home') as ReturnType<NatLab['addRouter']>;
    lab.exec('server', 'ip', ['route', 'replace', `${home.lanSubnet}.0/24`, 'via', home.addr]);
    expect(lab.exec('laptop', 'ping', ['-c', '1', '-W', '2', lab.host('server').addr])).toMatch(/1 received/);
    expect(() => lab.exec('server', 'ping', ['-c', '1', '-W', '1', lab.host('home').addr])).toThrow();
    expect(() => lab.exec('server', 'ping', ['-c', '1', '-W', '1', lab.host('laptop').addr])).toThrow();
  });
});

describe('NatLab', () => {
  it('removes every namespace, link and process it made', async () => {
    const lab = NatLab.create();
    lab.addRouter('r', 'symmetric');
    lab.addLanHost('r', 'h', 2);
    lab.addWanHost('w');
    const sleeper = lab.spawn('h', 'sleep', ['60']);
    lab.destroy();
    lab.destroy();
    await new Promise((r) => (sleeper.exitCode !== null || sleeper.signalCode ? r(null) : sleeper.once('exit', r)));
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(`mwn-${lab.id}-`);
    expect(execFileSync('ip', ['link', 'show'], { encoding: 'utf8' })).not.toContain(lab.wanBridge);
  });
});
