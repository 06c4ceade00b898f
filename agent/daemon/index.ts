// The node agent daemon: registration, netmap stream, data path, local API.
export { daemonCommand, parseDaemonArgs } from './command.js';
export { Daemon, type DaemonOptions, type Prefs, type Registration } from './daemon.js';
export { Engine, type EngineOptions, type TunDevice } from './engine.js';
