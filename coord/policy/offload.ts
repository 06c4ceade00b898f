// Checking a policy (parse, tests, compile) can take a second for the largest policy coord accepts;
// on coord's event loop that second would stall every network's API and netmap streams. So the check
// runs on one worker thread, one job at a time, and the event loop only waits for the answer.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { runCheckJob, settle, type CheckJob, type CheckOutcome } from './check-job.js';
import { PolicyError } from './errors.js';
import type { Policy } from './parse.js';

/** A check that takes longer than this is abandoned (the thread is replaced) and the policy refused. */
export const CHECK_TIMEOUT_MS = 60_000;
/** Checks waiting at once; beyond this coord answers "busy" rather than queue without bound. */
export const MAX_QUEUED_CHECKS = 32;

/** Too many policy checks are waiting: try again later (HTTP 503). */
export class PolicyCheckBusy extends Error {}

interface Pending {
  resolve: (o: CheckOutcome) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const threadFile = fileURLToPath(new URL('./check-thread.js', import.meta.url));
let worker: Worker | undefined;
let nextId = 1;
const pending = new Map<number, Pending>();

function failAll(err: Error): void {
  for (const [id, p] of pending) {
    clearTimeout(p.timer);
    pending.delete(id);
    p.reject(err);
  }
}

function thread(): Worker {
  if (worker) return worker;
  const w = new Worker(threadFile);
  w.unref();
  w.on('message', (m: { id: number; outcome?: CheckOutcome; crash?: string }) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.outcome) p.resolve(m.outcome);
    else p.reject(new Error(`policy check failed: ${m.crash}`));
  });
  w.on('error', (err) => {
    if (worker === w) worker = undefined;
    failAll(err);
  });
  w.on('exit', () => {
    if (worker === w) worker = undefined;
    failAll(new Error('the policy check thread stopped'));
  });
  worker = w;
  return w;
}

/**
 * Parses `text` and runs its tests against `topo`, off the event loop. Resolves to the Policy, or with
 * `compile` (a validation) compiles it for `topo` too and resolves to null. Rejects with PolicyError
 * (a refused policy), or PolicyCheckBusy.
 */
export async function checkPolicyOffThread(text: string, topo: CheckJob['topo'], compile: false): Promise<Policy>;
export async function checkPolicyOffThread(text: string, topo: CheckJob['topo'], compile: true, tests?: string): Promise<null>;
export async function checkPolicyOffThread(text: string, topo: CheckJob['topo'], compile: boolean, tests?: string): Promise<Policy | null> {
  const job: CheckJob = { text, topo, compile, ...(tests === undefined ? {} : { tests }) };
  // Run from TypeScript sources (unit tests) there is no compiled thread file: check in place.
  if (!existsSync(threadFile)) return settle(runCheckJob(job));
  if (pending.size >= MAX_QUEUED_CHECKS) throw new PolicyCheckBusy('coord is checking too many policies at once; try again in a moment');
  const w = thread();
  const id = nextId++;
  const outcome = await new Promise<CheckOutcome>((resolve, reject) => {
    const timer = setTimeout(() => {
      pending.delete(id);
      reject(new PolicyError(`checking the policy took longer than ${CHECK_TIMEOUT_MS / 1000} s; make it smaller`));
      if (worker === w) worker = undefined;
      // The thread is busy with this job: replace it (later jobs fail and are retried by their callers).
      void w.terminate();
    }, CHECK_TIMEOUT_MS);
    pending.set(id, { resolve, reject, timer });
    w.postMessage({ id, job });
  });
  return settle(outcome);
}
