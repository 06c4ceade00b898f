// The agent's client for coord's machine API. See docs/protocol.md.
export { ControlClient, ControlError, signedHeaders, type ClientOptions, type NetmapStream, type StreamHandlers, type StreamOptions } from './client.js';
export { ReconnectSchedule, type ReconnectOptions } from './reconnect.js';
export { generateMachineKey, loadOrCreateMachineKey, machineKeyFromPkcs8, machineKeyToPkcs8, type MachineKey } from './keys.js';
export type { Netmap, PeerNode, SelfNode, RegisterRequest, RegisterResponse, UpdateRequest } from '../../wire/protocol.js';
