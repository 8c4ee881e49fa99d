// The background worker's side of the build socket (client/workerSocket.ts): starts the builds
// `strata build` hands it, with this process's Temporal connection, and answers the build's
// progress, heartbeats, result and cancellation. Whoever can open the socket (mode 0600: this
// user) could reach Temporal anyway; still, every request is checked as hostile input.
import { promises as fs } from 'node:fs';
import net from 'node:net';
import type { Client } from '@temporalio/client';
import { PROCESS_TAG } from '../engine/fsutil/atomic.js';
import { storeId } from '../engine/store/identity.js';
import type { Store } from '../engine/store/store.js';
import { connectionOptions, type TemporalTarget } from '../worker/target.js';
import { temporal } from '../worker/temporalClient.js';
import type { buildImage } from '../workflows/buildImage.js';
import { checkBuildRequest } from '../workflows/checkRequest.js';
import type { BuildRequest } from '../workflows/types.js';
import { buildUrl, queryProgress } from './follow.js';
import { activityBeats } from './output.js';
import { historyTimings } from './timing.js';
import { BUILD_ID, LineTooLong, MAX_REQUEST_BYTES, REQUEST_TIMEOUT_MS, SOCKET_OPS, readLine, socketDir, socketPath, type SocketOp } from './workerSocket.js';

/** Web UI text of a build: bounded, it goes to Temporal as is. */
const MAX_SUMMARY = 1000;
const MAX_DETAILS = 20_000;
const MAX_MEMO = 64 << 10;
/** Connections served at once: each holds a result's long poll at most. */
const MAX_CONNECTIONS = 256;

export interface StartRequest {
  op: 'start';
  workflowId: string;
  request: BuildRequest;
  summary: string;
  details: string;
  memo: Record<string, unknown>;
}

/** A refused request: its message is the answer. */
class Refused extends Error {}

function refuse(detail: string): never {
  throw new Refused(`refuse build request: ${detail}`);
}

/**
 * Checks a request line's shape, and that a start names this store's blobs and nothing else
 * on disk: the client saves and pushes its own outputs, so a request that names output paths
 * is refused (a detached build goes through Temporal).
 */
export async function checkSocketRequest(v: unknown, store: Store): Promise<{ op: SocketOp; workflowId: string } | StartRequest> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) refuse('not an object');
  const r = v as Record<string, unknown>;
  if (typeof r.op !== 'string' || !(SOCKET_OPS as readonly string[]).includes(r.op)) refuse(`op: not one of ${SOCKET_OPS.join(', ')}`);
  if (typeof r.workflowId !== 'string' || !BUILD_ID.test(r.workflowId)) refuse('workflowId: not a build ID (build-<12 hex digits>)');
  const allowed = r.op === 'start' ? ['op', 'workflowId', 'request', 'summary', 'details', 'memo'] : ['op', 'workflowId'];
  for (const k of Object.keys(r)) if (!allowed.includes(k)) refuse(`unknown field ${JSON.stringify(k).slice(0, 100)}`);
  if (r.op !== 'start') return { op: r.op as SocketOp, workflowId: r.workflowId };
  try {
    checkBuildRequest(r.request);
  } catch (e) {
    refuse((e as Error).message.replace(/^refuse /, ''));
  }
  const req = r.request as BuildRequest;
  if (req.outputs.length > 0 || req.push) refuse('outputs, push: the client saves and pushes what it follows');
  if (typeof r.summary !== 'string' || r.summary.length > MAX_SUMMARY) refuse(`summary: not a string of at most ${MAX_SUMMARY} characters`);
  if (typeof r.details !== 'string' || r.details.length > MAX_DETAILS) refuse(`details: not a string of at most ${MAX_DETAILS} characters`);
  if (typeof r.memo !== 'object' || r.memo === null || Array.isArray(r.memo) || JSON.stringify(r.memo).length > MAX_MEMO) refuse('memo: not an object of at most 64 KiB');
  if (req.storeId !== (await storeId(store))) refuse("storeId: not this worker's store");
  for (const d of [req.contextDigest, req.dockerfileDigest]) if (!(await store.hasBlob(d))) refuse(`${d}: not in the store`);
  return r as unknown as StartRequest;
}

export interface BuildServer {
  path: string;
  close(): Promise<void>;
}

/** Listens on the store's socket for this worker; undefined (builds go through Temporal) when it cannot. */
export async function serveBuilds(store: Store, target: TemporalTarget, queue: string, log: (msg: string) => void): Promise<BuildServer | undefined> {
  const file = socketPath(store.root, PROCESS_TAG);
  // A Unix socket's path has 107 bytes at most.
  if (Buffer.byteLength(file) > 107) {
    log(`strata worker: no build socket (${file} is too long a path); builds go through Temporal`);
    return undefined;
  }
  await fs.mkdir(socketDir(store.root), { recursive: true, mode: 0o700 });
  await fs.chmod(socketDir(store.root), 0o700);
  await fs.rm(file, { force: true });
  const connection = await temporal.Connection.connect(connectionOptions(target));
  const client = new temporal.Client({ connection, namespace: target.namespace });
  const open = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    if (open.size >= MAX_CONNECTIONS) return sock.destroy();
    open.add(sock);
    sock.once('close', () => open.delete(sock));
    sock.on('error', () => undefined);
    void answer(sock, client, store, target, queue);
  });
  // Created with no access for others before anyone can connect: umask, then chmod to be sure.
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(file, () => resolve());
    });
  } finally {
    process.umask(umask);
  }
  await fs.chmod(file, 0o600);
  let closing: Promise<void> | undefined;
  return {
    path: file,
    close: () =>
      (closing ??= (async () => {
        await new Promise<void>((r) => server.close(() => r()));
        // Clients following a build see their link end and follow on through Temporal.
        for (const s of open) s.destroy();
        await fs.rm(file, { force: true });
        await connection.close();
      })()),
  };
}

async function answer(sock: net.Socket, client: Client, store: Store, target: TemporalTarget, queue: string): Promise<void> {
  const send = (a: { ok: unknown } | { error: string }) => {
    if (!sock.destroyed) sock.end(JSON.stringify(a) + '\n');
  };
  sock.setTimeout(REQUEST_TIMEOUT_MS, () => sock.destroy());
  let line: string;
  try {
    line = await readLine(sock, MAX_REQUEST_BYTES);
  } catch (e) {
    if (e instanceof LineTooLong) send({ error: `refuse build request: longer than ${MAX_REQUEST_BYTES} bytes` });
    return;
  }
  sock.setTimeout(0); // a result waits as long as the build runs
  try {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      refuse('not JSON');
    }
    const r = await checkSocketRequest(parsed, store);
    const handle = client.workflow.getHandle(r.workflowId);
    switch (r.op) {
      case 'start': {
        const s = r as StartRequest;
        await client.workflow.start<typeof buildImage>('buildImage', {
          taskQueue: queue,
          workflowId: s.workflowId,
          args: [s.request],
          staticSummary: s.summary,
          staticDetails: s.details,
          memo: s.memo,
        });
        return send({ ok: { url: target.uiUrl ? buildUrl(target, s.workflowId) : undefined } });
      }
      case 'progress':
        return send({ ok: (await queryProgress(client, handle)) ?? null });
      case 'beats':
        return send({ ok: await activityBeats(client, r.workflowId) });
      case 'result': {
        // The client leaving (Ctrl-C twice, a waiting build) ends the long poll.
        const leave = new AbortController();
        sock.once('close', () => leave.abort());
        if (sock.destroyed) leave.abort(); // gone before the listener was there
        try {
          return send({ ok: await client.withAbortSignal(leave.signal, () => handle.result()) });
        } catch (e) {
          return send({ error: e instanceof temporal.WorkflowFailedError ? (e.cause?.message ?? e.message) : (e as Error).message });
        }
      }
      case 'cancel':
        await handle.cancel();
        return send({ ok: null });
      case 'timings':
        return send({ ok: await historyTimings(client, r.workflowId) });
    }
  } catch (e) {
    send({ error: (e as Error).message });
  }
}
