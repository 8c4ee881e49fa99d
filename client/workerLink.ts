// A build started and followed through the store's background worker on this machine (its
// socket, client/workerSocket.ts): the fast path of `strata build`, which then loads no
// Temporal code. Anything else — no such worker, another build of strata, another
// environment, a socket that is not this user's — leaves the build to Temporal's client.
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { taskQueue } from '../worker/queue.js';
import { socketWorkerFor } from '../worker/registry.js';
import { configuredTarget } from '../worker/target.js';
import type { BuildProgress, BuildResult } from '../workflows/types.js';
import type { StartRequest } from './buildServer.js';
import { LinkLost, type BuildLink } from './follow.js';
import type { ActivityBeat } from './output.js';
import { MAX_ANSWER_BYTES, readLine, socketDir, type SocketOp } from './workerSocket.js';

/** The background worker could not be reached before the build started: start it through Temporal. */
export class WorkerUnavailable extends Error {}

/**
 * The socket of the store's background worker that serves this command's queue, when this
 * user's own (the directory and the socket 0700/0600 and ours) and not disabled
 * (STRATA_WORKER_SOCKET=0).
 */
export async function workerSocket(root: string): Promise<string | undefined> {
  if (process.env.STRATA_WORKER_SOCKET === '0') return undefined;
  const rec = await socketWorkerFor(root, configuredTarget(), taskQueue());
  const sock = rec?.socket;
  if (!sock || path.dirname(sock) !== socketDir(root)) return undefined;
  const uid = process.getuid?.();
  const [dir, st] = await Promise.all([fs.lstat(socketDir(root)).catch(() => undefined), fs.lstat(sock).catch(() => undefined)]);
  if (!dir?.isDirectory() || !st?.isSocket()) return undefined;
  if (dir.uid !== uid || st.uid !== uid || (dir.mode & 0o077) !== 0 || (st.mode & 0o077) !== 0) return undefined;
  return sock;
}

/** One request on its own connection; its answer, or the worker's error. */
async function call<T>(sock: string, request: { op: SocketOp; workflowId: string } & Record<string, unknown>, signal?: AbortSignal): Promise<T> {
  const conn = net.connect(sock);
  const abort = () => conn.destroy();
  signal?.addEventListener('abort', abort);
  try {
    await new Promise<void>((resolve, reject) => {
      conn.once('connect', resolve);
      conn.once('error', (e) => reject(new WorkerUnavailable(`the background worker's socket: ${e.message}`)));
    });
    conn.write(JSON.stringify(request) + '\n');
    let line: string;
    try {
      line = await readLine(conn, MAX_ANSWER_BYTES);
    } catch (e) {
      throw new LinkLost(`the background worker went (${(e as Error).message})`);
    }
    const answer = JSON.parse(line) as { ok?: T; error?: string };
    if (typeof answer.error === 'string') throw new Error(answer.error);
    return answer.ok as T;
  } finally {
    signal?.removeEventListener('abort', abort);
    conn.destroy();
  }
}

/**
 * Starts the build through the worker and returns its link. WorkerUnavailable when the worker
 * could not be asked; a refused or failed start is the worker's error.
 */
export async function startThroughWorker(sock: string, storeRoot: string, start: Omit<StartRequest, 'op'>): Promise<BuildLink & { timings(): Promise<string> }> {
  const id = start.workflowId;
  let started: { url?: string };
  try {
    started = await call<{ url?: string }>(sock, { op: 'start', ...start });
  } catch (e) {
    // The worker went between reading the request and answering: whether it started the build is unknown.
    if (e instanceof LinkLost) throw new WorkerUnavailable(e.message);
    throw e;
  }
  return {
    workflowId: id,
    storeRoot,
    url: started.url,
    // Progress is a convenience, as through Temporal: no answer is no progress.
    progress: () =>
      call<BuildProgress | null>(sock, { op: 'progress', workflowId: id }).then(
        (p) => p ?? undefined,
        () => undefined,
      ),
    beats: () => call<ActivityBeat[]>(sock, { op: 'beats', workflowId: id }).catch(() => []),
    result: (signal) =>
      call<BuildResult>(sock, { op: 'result', workflowId: id }, signal).catch((e: Error) => {
        throw e instanceof WorkerUnavailable ? new LinkLost(e.message) : e;
      }),
    cancel: () => call<null>(sock, { op: 'cancel', workflowId: id }).then(() => undefined),
    // The result's link breaks when the worker goes, and the build is followed on through Temporal.
    unanswered: async () => undefined,
    timings: () => call<string>(sock, { op: 'timings', workflowId: id }),
  };
}
