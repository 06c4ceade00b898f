// One-shot compilation: every node's filter for a policy and a topology.
import type { FilterRule } from '../../wire/types.js';
import { PolicyCompiler } from './compiler.js';
import type { Policy } from './parse.js';
import type { Topology } from './types.js';

/** The FilterRules each node of the topology receives, keyed by node name ([] = accepts nothing). */
export function compileFilters(policy: Policy, topo: Topology): Record<string, FilterRule[]> {
  return new PolicyCompiler(policy, topo).compileAll();
}
