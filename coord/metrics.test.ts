import { describe, expect, it } from 'vitest';
import { deviceStateOf, routeOf } from './metrics.js';

describe('routeOf', () => {
  it('names the route template, never the raw path', () => {
    expect(routeOf('GET', '/api/v2/device/d123abc')).toBe('/api/v2/device/:id');
    expect(routeOf('GET', '/api/v2/tailnet/example.com/devices')).toBe('/api/v2/tailnet/:t/devices');
    expect(routeOf('POST', '/api/v2/login')).toBe('/api/v2/login');
    expect(routeOf('GET', '/api/v2/no/such/thing/secret-token')).toBe('/api/v2/*');
    expect(routeOf('GET', '/machine/map')).toBe('/machine/map');
    expect(routeOf('GET', '/machine/whatever')).toBe('/machine/*');
    expect(routeOf('POST', '/admin/api/session')).toBe('/admin/api/session');
    expect(routeOf('GET', '/admin/invite/secretcode')).toBe('/admin/*');
    expect(routeOf('GET', '/wp-login.php')).toBe('other');
  });
});

describe('deviceStateOf', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('tells awaiting approval, expired, connected and offline apart', () => {
    expect(deviceStateOf({ authorized: false, keyExpiryDisabled: false, expires: null }, true, now)).toBe('awaiting_approval');
    expect(deviceStateOf({ authorized: true, keyExpiryDisabled: false, expires: '2025-12-31T00:00:00Z' }, true, now)).toBe('expired');
    expect(deviceStateOf({ authorized: true, keyExpiryDisabled: true, expires: '2025-12-31T00:00:00Z' }, true, now)).toBe('connected');
    expect(deviceStateOf({ authorized: true, keyExpiryDisabled: false, expires: null }, false, now)).toBe('offline');
  });
});
