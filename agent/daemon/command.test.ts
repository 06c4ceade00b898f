import { describe, expect, it } from 'vitest';
import { parseDaemonArgs } from './command.js';
import { DEFAULT_ROUTE_PREFS } from '../routing/index.js';
import { agentVersion, defaultHostname, routePrefsAfter } from './daemon.js';

describe('agent daemon arguments', () => {
  it('has the documented defaults', () => {
    expect(parseDaemonArgs([])).toEqual({ stateDir: '/var/lib/meshward', socket: '/run/meshward/agent.sock', tun: 'mw0', port: 41641, mtu: 1280, logLevel: 'info' });
  });

  it('takes every flag', () => {
    expect(parseDaemonArgs(['--state-dir', '/tmp/s', '--socket', '/tmp/a.sock', '--tun', 'mw1', '--port', '0', '--mtu', '1420', '--log-level', 'debug'])).toEqual({
      stateDir: '/tmp/s', socket: '/tmp/a.sock', tun: 'mw1', port: 0, mtu: 1420, logLevel: 'debug',
    });
  });

  it('serves the metrics on an address only when asked', () => {
    expect(parseDaemonArgs(['--metrics-listen', '127.0.0.1:9101']).metricsListen).toEqual({ host: '127.0.0.1', port: 9101 });
    expect(parseDaemonArgs(['--metrics-listen', '[::1]:9101']).metricsListen).toEqual({ host: '::1', port: 9101 });
    expect(() => parseDaemonArgs(['--metrics-listen', '9101'])).toThrow(/invalid --metrics-listen "9101": HOST:PORT/);
    expect(() => parseDaemonArgs(['--metrics-listen', 'localhost:99999'])).toThrow(/invalid --metrics-listen/);
  });

  it('says what is wrong with a bad flag', () => {
    expect(() => parseDaemonArgs(['--port', '70000'])).toThrow(/invalid --port "70000"/);
    expect(() => parseDaemonArgs(['--port=-1'])).toThrow(/invalid --port/);
    expect(() => parseDaemonArgs(['--tun', 'a-name-much-too-long'])).toThrow(/invalid --tun/);
    expect(() => parseDaemonArgs(['--mtu', '576'])).toThrow(/invalid --mtu "576": 1280 to 9000/);
    expect(() => parseDaemonArgs(['--log-level', 'loud'])).toThrow(/--log-level must be one of fatal, error, warn, info/);
    expect(() => parseDaemonArgs(['--authkey', 'x'])).toThrow(/Unknown option '--authkey'/);
  });
});

describe('defaults the daemon derives', () => {
  it('makes a DNS label of the machine hostname', () => {
    expect(defaultHostname('Web_1.example.com')).toBe('web-1');
    expect(defaultHostname('---')).toBe('device');
    expect(defaultHostname('x'.repeat(80))).toHaveLength(63);
  });

  it('knows its version from package.json', () => {
    expect(agentVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe('route settings after agent up', () => {
  it('remembers --accept-routes-over-lan only with --accept-routes, and drops it with --accept-routes=false', () => {
    expect(() => routePrefsAfter(DEFAULT_ROUTE_PREFS, { acceptRoutesOverLan: true })).toThrow(/--accept-routes-over-lan needs --accept-routes/);
    const on = routePrefsAfter(DEFAULT_ROUTE_PREFS, { acceptRoutes: true, acceptRoutesOverLan: true });
    expect(on).toMatchObject({ acceptRoutes: true, acceptRoutesOverLan: true });
    expect(routePrefsAfter(on, {})).toEqual(on);
    expect(routePrefsAfter(on, { acceptRoutesOverLan: false })).toMatchObject({ acceptRoutes: true, acceptRoutesOverLan: false });
    expect(routePrefsAfter(on, { acceptRoutes: false })).toMatchObject({ acceptRoutes: false, acceptRoutesOverLan: false });
  });

  it('takes --exit-node-allow-lan-access only with an exit node (as tailscale up does), and keeps it across --exit-node=', () => {
    expect(() => routePrefsAfter(DEFAULT_ROUTE_PREFS, { exitNodeAllowLanAccess: true })).toThrow('--exit-node-allow-lan-access needs an exit node (this device uses none): add --exit-node NAME');
    const on = routePrefsAfter(DEFAULT_ROUTE_PREFS, { exitNode: 'egress', exitNodeAllowLanAccess: true });
    expect(on).toMatchObject({ exitNode: 'egress', exitNodeAllowLanAccess: true });
    expect(routePrefsAfter(on, { exitNode: '' })).toMatchObject({ exitNode: '', exitNodeAllowLanAccess: true });
    expect(routePrefsAfter(DEFAULT_ROUTE_PREFS, { exitNodeAllowLanAccess: false })).toEqual(DEFAULT_ROUTE_PREFS);
  });
});
