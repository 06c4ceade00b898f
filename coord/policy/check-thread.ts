// The body of the policy-check worker thread (see offload.ts): runs one job per message, in order.
import { parentPort } from 'node:worker_threads';
import { runCheckJob, type CheckJob } from './check-job.js';

parentPort!.on('message', (msg: { id: number; job: CheckJob }) => {
  try {
    parentPort!.postMessage({ id: msg.id, outcome: runCheckJob(msg.job) });
  } catch (err) {
    parentPort!.postMessage({ id: msg.id, crash: String((err as Error)?.stack ?? err) });
  }
});
