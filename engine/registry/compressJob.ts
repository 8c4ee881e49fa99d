// compressJob: the main-thread side of one layer's compression — starts the worker thread
// (compressWorker.ts), or compresses a small layer inline, feeds the spool's progress to the
// upload that reads behind it, and settles with the digests (or the error). Cancelled with
// the signal.
import { Worker } from 'node:worker_threads';
import type { Digest } from '../digest.js';
import { EngineError } from '../errors.js';
import type { PushCompression } from './compress.js';
import type { Spool } from './spool.js';

export interface CompressJob {
  source: { kind: 'blob'; path: string } | { kind: 'snapshot'; dir: string; sourceDateEpoch?: number };
  compression: PushCompression;
  spoolPath: string;
}

export interface CompressedResult {
  /** Digest and size of the uncompressed tar as read. */
  diffId: Digest;
  size: number;
  /** Digest and size of the compressed blob in the spool. */
  digest: Digest;
  compressedSize: number;
}

const WORKER_URL = new URL('./compressWorker.js', import.meta.url);

/**
 * Layers up to this size (uncompressed) compress on the calling thread: starting a worker
 * thread costs more than hashing them there (about 0.25 s a layer on a loaded machine, most of
 * a remote store's cost per step; a 4 MiB hash is a few ms).
 */
export const INLINE_MAX_BYTES = 4 << 20;

/** Compresses into `spool` (whose `written` follows): inline when `size` is small, else in a worker thread. */
export async function compressLayer(job: CompressJob, size: number, spool: Spool, signal?: AbortSignal): Promise<CompressedResult> {
  if (size > INLINE_MAX_BYTES) return compressInWorker(job, spool, signal);
  const { compressToSpool } = await import('./compressSpool.js');
  try {
    return await compressToSpool(job, (written) => spool.advance(written), signal);
  } catch (err) {
    const e = signal?.aborted ? ((signal.reason as Error) ?? err) : new EngineError(codeOf(err), `compress layer: ${(err as Error).message}`);
    spool.fail(e as Error);
    throw e;
  }
}

function codeOf(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code && /^[A-Z_]+$/.test(code) ? code : 'COMPRESS_FAILED';
}

/** Compresses in a worker thread into `spool` (whose `written` follows the worker). */
function compressInWorker(job: CompressJob, spool: Spool, signal?: AbortSignal): Promise<CompressedResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_URL, { workerData: job });
    let settled = false;
    const settle = (err: Error | undefined, value?: CompressedResult) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      void worker.terminate();
      if (err) {
        spool.fail(err);
        reject(err);
      } else resolve(value!);
    };
    const onAbort = () => settle((signal?.reason as Error) ?? new Error('compression aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (m: { written?: number; done?: boolean; error?: string; code?: string } & Partial<CompressedResult>) => {
      if (m.error !== undefined) return settle(new EngineError(m.code && /^[A-Z_]+$/.test(m.code) ? m.code : 'COMPRESS_FAILED', `compress layer: ${m.error}`));
      if (m.written !== undefined) spool.advance(m.written);
      if (m.done) settle(undefined, { diffId: m.diffId!, size: m.size!, digest: m.digest!, compressedSize: m.compressedSize! });
    });
    worker.on('error', (err) => settle(err));
    worker.on('exit', (code) => settle(new EngineError('COMPRESS_FAILED', `compress layer: the worker thread exited (${code})`)));
  });
}
