import { describe, expect, it } from 'vitest';
import { agentRegistry, type AgentSnapshot } from './metrics.js';

const line = (text: string, start: string) => text.split('\n').find((l) => l.startsWith(start));

describe('agent metrics', () => {
  it('reads its figures from the snapshot at scrape time, with bounded labels', async () => {
    const now = Date.now();
    const snap: AgentSnapshot = {
      filter: {
        accepted: 7,
        dropped: {} as never,
        in: { accepted: 5, dropped: { 'no-rule': 2, quarantine: 1 } as never },
        out: { accepted: 2, dropped: { 'no-rule': 0, quarantine: 0 } as never },
      },
      wireguardDrops: { decrypt: 3, noRoute: 4 },
      handshakes: { initiated: 2, completed: 1, failed: 1 },
      peers: [
        { endpoint: '192.0.2.1:41641', lastHandshake: now - 1000, txBytes: 100, rxBytes: 200 },
        { endpoint: '192.0.2.2:41641', lastHandshake: now - 200_000, txBytes: 1, rxBytes: 2 },
        { endpoint: null, lastHandshake: 0, txBytes: 0, rxBytes: 0 },
        { endpoint: null, relay: 'coord', lastHandshake: now - 1000, txBytes: 0, rxBytes: 0 },
      ],
      netmapVersion: now - 30_000,
      coord: { connected: true, connects: 3, losses: 2 },
      dns: { queries: 6, local: 4, forwarded: 1, servfail: 1, dropped: 0 },
    };
    const registry = agentRegistry(() => snap);
    const text = await registry.metrics();
    expect(line(text, 'meshward_agent_packets_total{direction="in"}')).toBe('meshward_agent_packets_total{direction="in"} 8');
    expect(line(text, 'meshward_agent_filter_drops_total{reason="no_rule",direction="in"}')).toMatch(/ 2$/);
    expect(line(text, 'meshward_agent_wireguard_drops_total{reason="no_route"}')).toMatch(/ 4$/);
    expect(line(text, 'meshward_agent_bytes_total{direction="in"}')).toMatch(/ 202$/);
    expect(line(text, 'meshward_agent_wireguard_handshakes_total{result="failed"}')).toMatch(/ 1$/);
    // A session older than 3 minutes, or none, is no path.
    expect(line(text, 'meshward_agent_peers{path="direct"}')).toMatch(/ 1$/);
    expect(line(text, 'meshward_agent_peers{path="relay"}')).toMatch(/ 1$/);
    expect(line(text, 'meshward_agent_peers{path="none"}')).toMatch(/ 2$/);
    expect(Number(line(text, 'meshward_agent_netmap_version_age_seconds ')!.split(' ')[1])).toBeGreaterThanOrEqual(30);
    expect(line(text, 'meshward_agent_coord_reconnects_total ')).toBe('meshward_agent_coord_reconnects_total 2');
    expect(line(text, 'meshward_agent_dns_queries_total{outcome="servfail"}')).toMatch(/ 1$/);
    expect(text).not.toContain('192.0.2.1');
  });
});
