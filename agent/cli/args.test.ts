import { describe, expect, it } from 'vitest';
import { UsageError } from '../../wire/cli.js';
import { DEFAULT_SOCKET, parsePingArgs, parseStatusArgs, parseTags, parseUpArgs, parseWhoisArgs } from './args.js';

describe('agent up arguments', () => {
  it('parses every flag', () => {
    expect(
      parseUpArgs(['--coord', 'http://127.0.0.1:8080/', '--authkey', 'mwk-abc', '--hostname', 'Web-1', '--advertise-tags', 'tag:web,tag:db']),
    ).toEqual({ socket: DEFAULT_SOCKET, coord: 'http://127.0.0.1:8080', authkey: 'mwk-abc', hostname: 'web-1', advertiseTags: ['tag:web', 'tag:db'] });
  });

  it('leaves out what was not given, and an empty tag list clears tags', () => {
    expect(parseUpArgs([])).toEqual({ socket: DEFAULT_SOCKET });
    expect(parseUpArgs(['--advertise-tags', '']).advertiseTags).toEqual([]);
  });

  it('refuses a bad tag locally, naming it', () => {
    expect(() => parseTags('tag:web,web')).toThrow(/invalid tag "web".*did you mean "tag:web"/);
    expect(() => parseTags('tag:1abc')).toThrow(/invalid tag "tag:1abc"/);
    expect(() => parseTags('tag:a_b')).toThrow(UsageError);
    expect(parseTags('tag:a-1, tag:B2,tag:a-1')).toEqual(['tag:a-1', 'tag:B2']);
  });

  it('refuses unknown flags, missing values and bad values with a usage error', () => {
    expect(() => parseUpArgs(['--auth-key', 'x'])).toThrow(/Unknown option '--auth-key'/);
    expect(() => parseUpArgs(['--coord'])).toThrow(/argument missing/);
    expect(() => parseUpArgs(['--coord', 'localhost:8080'])).toThrow(/http:\/\/ or https:\/\//);
    expect(() => parseUpArgs(['--coord', 'not a url'])).toThrow(/not a URL/);
    expect(() => parseUpArgs(['--hostname=-bad'])).toThrow(/invalid --hostname/);
    expect(() => parseUpArgs(['extra'])).toThrow(/unexpected argument "extra"/);
    expect(() => parseUpArgs(['--authkey', ' '])).toThrow(/--authkey is empty/);
  });
});

describe('agent up route flags', () => {
  it('parses the route flags in each spelling, and leaves out those not given', () => {
    expect(
      parseUpArgs(['--advertise-routes', '10.1.0.0/24,10.2.0.0/16', '--accept-routes', '--exit-node=egress', '--exit-node-allow-lan-access', 'true', '--snat-subnet-routes=false']),
    ).toEqual({
      socket: DEFAULT_SOCKET, advertiseRoutes: ['10.1.0.0/24', '10.2.0.0/16'], acceptRoutes: true, exitNode: 'egress', exitNodeAllowLanAccess: true, snatSubnetRoutes: false,
    });
    expect(parseUpArgs(['--advertise-exit-node', '--exit-node='])).toEqual({ socket: DEFAULT_SOCKET, advertiseExitNode: true, exitNode: '' });
    expect(parseUpArgs(['--advertise-routes='])).toEqual({ socket: DEFAULT_SOCKET, advertiseRoutes: [] });
  });

  it('takes --accept-routes-over-lan with --accept-routes, and refuses it with --accept-routes=false', () => {
    expect(parseUpArgs(['--accept-routes', '--accept-routes-over-lan'])).toEqual({ socket: DEFAULT_SOCKET, acceptRoutes: true, acceptRoutesOverLan: true });
    expect(parseUpArgs(['--accept-routes-over-lan', 'false'])).toEqual({ socket: DEFAULT_SOCKET, acceptRoutesOverLan: false });
    // alone it is kept for the daemon, which knows whether --accept-routes is remembered
    expect(parseUpArgs(['--accept-routes-over-lan=true'])).toEqual({ socket: DEFAULT_SOCKET, acceptRoutesOverLan: true });
    expect(() => parseUpArgs(['--accept-routes=false', '--accept-routes-over-lan'])).toThrow(
      new UsageError('--accept-routes-over-lan needs --accept-routes: drop --accept-routes=false, or --accept-routes-over-lan'),
    );
    expect(() => parseUpArgs(['--accept-routes-over-lan=maybe'])).toThrow(/--accept-routes-over-lan takes true or false/);
  });

  it('refuses bad routes and exit nodes with a usage error that says what to write', () => {
    expect(() => parseUpArgs(['--advertise-routes', '10.1.0.0/24,10.2.0.1/16'])).toThrow(new UsageError('10.2.0.1/16 has bits set after the prefix length; did you mean 10.2.0.0/16?'));
    expect(() => parseUpArgs(['--advertise-routes', '100.64.0.0/24'])).toThrow(UsageError);
    expect(() => parseUpArgs(['--exit-node', '192.168.1.1'])).toThrow(/not a tailnet address/);
    expect(() => parseUpArgs(['--accept-routes=yes'])).toThrow(/--accept-routes takes true or false/);
    expect(() => parseUpArgs(['--advertise-exit-node', '--exit-node', '100.64.0.2'])).toThrow(/cannot offer an exit node and use one at once/);
  });
});

describe('agent status and whois arguments', () => {
  it('status takes --json and --socket', () => {
    expect(parseStatusArgs(['--json', '--socket', '/tmp/x.sock'])).toEqual({ socket: '/tmp/x.sock', json: true });
  });

  it('whois takes IP, IP:PORT and [IPv6]:PORT', () => {
    expect(parseWhoisArgs(['100.64.0.1'])).toMatchObject({ ip: '100.64.0.1' });
    expect(parseWhoisArgs(['100.64.0.1:443'])).toMatchObject({ ip: '100.64.0.1', port: 443 });
    expect(parseWhoisArgs(['fd7a:115c:a1e0::1'])).toMatchObject({ ip: 'fd7a:115c:a1e0::1' });
    expect(parseWhoisArgs(['[fd7a:115c:a1e0::1]:22'])).toMatchObject({ ip: 'fd7a:115c:a1e0::1', port: 22 });
    expect(() => parseWhoisArgs([])).toThrow(/which address/);
    expect(() => parseWhoisArgs(['host:22'])).toThrow(/not an IP address/);
    expect(() => parseWhoisArgs(['1.2.3.4:70000'])).toThrow(/not an IP address/);
  });
});

describe('agent ping arguments', () => {
  it('takes a peer, -c N and --json', () => {
    expect(parsePingArgs(['web'])).toEqual({ socket: DEFAULT_SOCKET, peer: 'web', json: false });
    expect(parsePingArgs(['100.64.0.2', '-c', '3', '--json'])).toEqual({ socket: DEFAULT_SOCKET, peer: '100.64.0.2', count: 3, json: true });
  });

  it('refuses a missing peer and a bad count', () => {
    expect(() => parsePingArgs([])).toThrow(/which peer/);
    expect(() => parsePingArgs(['web', '-c', '0'])).toThrow(/-c takes a number/);
    expect(() => parsePingArgs(['web', '-c', 'x'])).toThrow(UsageError);
  });
});
