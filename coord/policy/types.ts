// Shapes shared by the policy engine's modules. The public entry point is ./index.ts.
import type { Range } from '../../wire/addr.js';
import type { FilterRule } from '../../wire/types.js';

export type { FilterRule };

/** A user's role in a network (coord/roles.ts). The role autogroups resolve to these users' devices. */
export type Role = 'owner' | 'admin' | 'network-admin' | 'it-admin' | 'billing-admin' | 'auditor' | 'member';

/** A device as the policy engine sees it (the node shape of the compat cases; extra keys are ignored). */
export interface TopoNode {
  hostname: string;
  /** Tags ("tag:x"). A tagged device belongs to its tags, not to a user. */
  tags: string[];
  ipv4: string;
  ipv6: string;
  /** The owning user's `name` (not email); null on tagged devices. */
  user: string | null;
  /** Routes the device advertises (subnets, 0.0.0.0/0 and ::/0 for an exit node). */
  routable_ips?: string[];
  /** The advertised routes that are approved. Only these count. */
  approved_routes?: string[];
  /** Posture attributes ("node:os", "node:tsVersion", custom "custom:x" …) for srcPosture. */
  posture?: Record<string, unknown>;
}

export interface TopoUser {
  id?: string | number;
  name: string;
  email: string;
  /** Default: 'member'. */
  role?: Role;
}

/** A user of another network who accepted a share of one or more devices of this network. */
export interface SharedUser {
  email: string;
  name?: string;
  /** The addresses of that user's devices (in their own network). */
  addrs: string[];
  /** Names (keys of Topology.nodes) of the devices of this network shared with that user. */
  sharedNodes: string[];
}

/** A network: the shape of the compat cases (users, nodes); extra keys are ignored. */
export interface Topology {
  users: TopoUser[];
  nodes: Record<string, TopoNode>;
  sharedUsers?: SharedUser[];
}

/** A position in the policy text (1-based line and column). */
export interface Pos {
  line: number;
  column: number;
}

/**
 * One `via` grant as it steers a source device: traffic to `prefixes` (or the internet, or everything
 * for a "*" destination) goes through devices tagged with one of `tags`, and no other.
 */
export interface ViaSteer {
  prefixes: Range[];
  internet: boolean;
  all: boolean;
  tags: string[];
  /** The grant's line in the policy file. */
  line: number;
}
