// Runs in a worker thread: compressSpool.ts for one layer. Hashing is synchronous in node: on
// the main thread a large layer's would hold up every upload (and the other layers); here each
// layer hashes on a core of its own. Messages: {written} as the spool grows, then {done, …} or
// {error, …}. See compressJob.ts.
import { parentPort, workerData } from 'node:worker_threads';
import { compressToSpool } from './compressSpool.js';
import type { CompressJob } from './compressJob.js';

compressToSpool(workerData as CompressJob, (written) => parentPort!.postMessage({ written })).then(
  (r) => parentPort!.postMessage({ done: true, ...r }),
  (err: NodeJS.ErrnoException) => parentPort!.postMessage({ error: err.message, code: err.code }),
);
