// MagicDNS on the device: a resolver at 100.100.100.100 and fd7a:115c:a1e0::53 that answers the
// netmap's names itself and forwards everything else, and the system configuration that points at it.
export { recordsFromNetmap, settingsFromDns, reverseName, type DnsRecords, type ResolverSettings } from './records.js';
export { MagicResolver, LOCAL_TTL } from './resolver.js';
export { DnsServer, buildQuery, describeAnswer, type DnsCounters, type QueryOutcome } from './server.js';
export { OsDns, SERVICE_IPV4, SERVICE_IPV6, type DnsMode, type OsDnsStatus } from './os-config.js';
export { parseUpstream } from './forwarder.js';
