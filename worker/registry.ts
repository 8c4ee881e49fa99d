// Which workers serve this store: every `strata worker` (in a terminal or in the background)
// keeps a record in $STRATA_HOME/workers/ while it polls, so a client on this machine knows a
// worker serves its queue without asking Temporal, and the background worker `strata build`
// starts is started once, however many builds race to start it.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, rmSync, statSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import lockfile from 'proper-lockfile';
import { PROCESS_TAG, writeFileAtomic } from '../engine/fsutil/atomic.js';
import { ownerAlive, selfRecord, type OwnerRecord } from '../engine/store/owners.js';
import type { TemporalTarget } from './temporal.js';

/** What a worker says of itself. */
export interface WorkerRecord {
  /** The worker's PROCESS_TAG: its owner record (owners/<tag>.json) says whether it lives. */
  tag: string;
  pid: number;
  /** Field 22 of /proc/<pid>/stat: with the pid, names one process for the life of a boot. */
  startTime: string;
  /** A record is trusted only where its pid means something: the same boot and pid namespace. */
  bootId: string;
  pidNamespace: string;
  address: string;
  namespace: string;
  queue: string;
  /** Started by `strata build` (or `strata worker start`), detached; `strata worker stop` ends it. */
  background: boolean;
  startedAt: string;
  /** Where a background worker writes its log. */
  log?: string;
  /** The environment its activities read, as it was when the worker started. */
  env: Record<string, string>;
  /** Which build of strata it runs (strataBuild()); absent in records of strata before it was kept. */
  build?: string;
  /** The background worker's build socket (client/workerSocket.ts), when it listens on one. */
  socket?: string;
}

/** dist/: the CLI's entry script and the workflow bundle are found from here. */
const DIST = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

let buildId: string | undefined;

/**
 * Names the build of strata this process runs: package.json's version and the workflow
 * bundle's (or, unbundled, the workflows') file identity, which every `npm run build` and
 * every install renews. A background worker of another build is replaced, not reused: it
 * would run old activities, and old workflow code on new histories.
 */
export function strataBuild(): string {
  if (buildId) return buildId;
  const version = (() => {
    try {
      return (JSON.parse(readFileSync(path.join(DIST, '..', 'package.json'), 'utf8')) as { version?: string }).version ?? '?';
    } catch {
      return '?';
    }
  })();
  const code = [path.join(DIST, 'workflow-bundle.js'), path.join(DIST, 'workflows', 'index.js')].map((f) => statSync(f, { throwIfNoEntry: false })).find((st) => st !== undefined);
  return (buildId = `${version}+${code ? `${code.ino.toString(36)}.${Math.round(code.mtimeMs).toString(36)}.${code.size.toString(36)}` : 'unknown'}`);
}

/**
 * Variables the worker's activities read (registries, credentials, git): a background worker
 * keeps those of the command that started it, and a client whose own differ is told so.
 */
const WORKER_ENV = ['DOCKER_CONFIG', 'HOME', 'STRATA_INSECURE_REGISTRIES', 'STRATA_REGISTRY_MIRRORS', 'STRATA_RUN_DENY_NETWORKS', 'STRATA_CACHE_MAX', 'STRATA_LOG_LEVEL'];

export function workerEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return Object.fromEntries(WORKER_ENV.filter((k) => env[k] !== undefined).map((k) => [k, env[k]!]));
}

/** The variables whose values differ between a worker's record and `env`. */
export function envDifferences(record: WorkerRecord, env: NodeJS.ProcessEnv = process.env): string[] {
  const mine = workerEnv(env);
  return WORKER_ENV.filter((k) => (mine[k] ?? '') !== (record.env[k] ?? ''));
}

function workersDir(root: string): string {
  return path.join(root, 'workers');
}

/** The background worker's log: one file for the store, appended. */
export function workerLogPath(root: string): string {
  return path.join(root, 'worker.log');
}

/** A log past this size is moved to worker.log.1 when the next background worker starts. */
const LOG_ROTATE_BYTES = 16 << 20;

/**
 * Records this process as a worker polling `queue` on `target` until the returned function is
 * called (at the start of its shutdown) or the process exits.
 */
export async function registerWorker(root: string, target: TemporalTarget, queue: string, opts: { background: boolean; socket?: string }): Promise<() => void> {
  const me = await selfRecord();
  const record: WorkerRecord = {
    tag: PROCESS_TAG,
    pid: process.pid,
    startTime: me.startTime,
    bootId: me.bootId,
    pidNamespace: me.pidNamespace,
    address: target.address,
    namespace: target.namespace,
    queue,
    background: opts.background,
    startedAt: new Date().toISOString(),
    ...(opts.background ? { log: workerLogPath(root) } : {}),
    env: workerEnv(),
    build: strataBuild(),
    ...(opts.socket ? { socket: opts.socket } : {}),
  };
  const file = path.join(workersDir(root), `${PROCESS_TAG}.json`);
  await fs.mkdir(workersDir(root), { recursive: true });
  await writeFileAtomic(file, JSON.stringify(record));
  const remove = () => rmSync(file, { force: true });
  process.once('exit', remove);
  return remove;
}

/** The records of workers on this machine that are verifiably alive, oldest first. */
export async function liveWorkers(root: string): Promise<WorkerRecord[]> {
  const dir = workersDir(root);
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  const me = await selfRecord();
  const out: WorkerRecord[] = [];
  for (const name of names.filter((n) => /^[0-9a-f]{12}\.json$/.test(n))) {
    let rec: WorkerRecord;
    try {
      rec = JSON.parse(await fs.readFile(path.join(dir, name), 'utf8')) as WorkerRecord;
    } catch {
      continue; // gone meanwhile
    }
    if (await recordAlive(root, rec, me)) out.push(rec);
    else if (sameMachine(rec, me)) await fs.rm(path.join(dir, name), { force: true }); // a killed worker's
  }
  return out.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}

/** True while the record's process exists and is not a zombie. */
function processRunning(rec: WorkerRecord): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${rec.pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[0] !== 'Z' && fields[0] !== 'X' && fields[19] === rec.startTime;
}

function sameMachine(rec: WorkerRecord, me: OwnerRecord): boolean {
  return !!rec.bootId && rec.bootId === me.bootId && !!rec.pidNamespace && rec.pidNamespace === me.pidNamespace;
}

/** Only a worker whose process this one can see counts: elsewhere, Temporal's pollers tell. */
async function recordAlive(root: string, rec: WorkerRecord, me: OwnerRecord): Promise<boolean> {
  return sameMachine(rec, me) && (await ownerAlive(root, rec.tag, me));
}

function serves(rec: WorkerRecord, target: TemporalTarget, queue: string): boolean {
  return rec.address === target.address && rec.namespace === target.namespace && rec.queue === queue;
}

/** A live worker of this machine that polls `queue` on `target`, background ones last. */
export async function localWorkerFor(root: string, target: TemporalTarget, queue: string): Promise<WorkerRecord | undefined> {
  const mine = (await liveWorkers(root)).filter((r) => serves(r, target, queue));
  return mine.find((r) => !r.background) ?? mine[0];
}

/**
 * The store's background worker serving `queue` on `target` that takes builds on its socket:
 * this build of strata, with this command's environment (else the build goes through Temporal,
 * which replaces or warns about it).
 */
export async function socketWorkerFor(root: string, target: TemporalTarget, queue: string): Promise<WorkerRecord | undefined> {
  return (await liveWorkers(root)).find((r) => r.background && r.socket && serves(r, target, queue) && r.build === strataBuild() && envDifferences(r).length === 0);
}

/** The CLI's entry script: the background worker is `strata worker --background`. */
const STRATA_BIN = path.join(DIST, '..', 'bin', 'strata.js');

/** How long a background worker may take to start polling (loading the workflow bundle on a busy machine). */
const START_TIMEOUT_MS = 120_000;

/**
 * Starts the background worker of this store for `queue` on `target`, unless a worker of this
 * machine serves it already; returns its record. Clients racing here start one worker: the
 * first takes a lock, the others wait for it and find its record.
 */
export async function startBackgroundWorker(root: string, target: TemporalTarget, queue: string, log: (msg: string) => void = () => undefined): Promise<WorkerRecord> {
  const dir = workersDir(root);
  await fs.mkdir(dir, { recursive: true });
  const key = createHash('sha256').update(`${target.address}\0${target.namespace}\0${queue}`).digest('hex').slice(0, 16);
  const release = await lockfile.lock(dir, {
    lockfilePath: path.join(dir, `start-${key}.lock`),
    // Held while a worker starts (seconds); a holder that died leaves a lock stale after 10 s.
    stale: 10_000,
    retries: { retries: Math.ceil(START_TIMEOUT_MS / 100), minTimeout: 100, maxTimeout: 100, factor: 1 },
  });
  try {
    const running = await localWorkerFor(root, target, queue);
    if (running && !(running.background && running.build !== strataBuild())) return running;
    if (running) {
      log(`Stopping the background worker (pid ${running.pid}) of another build of strata (${running.build ?? 'older'}; this is ${strataBuild()})`);
      await stopWorkers(root, [running]);
    }
    const logFile = workerLogPath(root);
    const size = await fs.stat(logFile).then(
      (s) => s.size,
      () => 0,
    );
    if (size > LOG_ROTATE_BYTES) await fs.rename(logFile, `${logFile}.1`).catch(() => undefined);
    log(`Starting a background worker for task queue "${queue}" (log: ${logFile}; strata worker stop ends it)`);
    const fd = openSync(logFile, 'a');
    const child = spawn(process.execPath, [STRATA_BIN, 'worker', '--background'], {
      detached: true,
      stdio: ['ignore', fd, fd],
      // Its own session and a neutral directory: a terminal's Ctrl-C or a removed cwd does not touch it.
      cwd: '/',
      env: { ...process.env, STRATA_HOME: root, STRATA_TASK_QUEUE: queue },
    });
    closeSync(fd);
    child.unref();
    let exited: number | string | undefined;
    child.once('exit', (code, signal) => (exited = code ?? signal ?? 'unknown'));
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const rec = await localWorkerFor(root, target, queue);
      if (rec) return rec;
      if (exited !== undefined) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (exited === undefined) child.kill('SIGKILL');
    const tail = (await fs.readFile(logFile, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');
    throw new Error(`start worker: the background worker ${exited === undefined ? 'did not start polling in time' : `exited (${exited})`}; see ${logFile}:\n${tail}`);
  } finally {
    await release();
  }
}

/**
 * Stops workers by their records: SIGTERM (running activities are cancelled and go to another
 * worker), SIGKILL after `graceMs`. Resolves when they are gone.
 */
export async function stopWorkers(root: string, records: WorkerRecord[], graceMs = 30_000): Promise<void> {
  const me = await selfRecord();
  await Promise.all(
    records.map(async (rec) => {
      const signal = (s: NodeJS.Signals) => {
        try {
          process.kill(rec.pid, s);
        } catch {
          // gone already
        }
      };
      signal('SIGTERM');
      const deadline = Date.now() + graceMs;
      // The process itself, not its owner record: that goes at 'exit', before the process does.
      while (sameMachine(rec, me) && processRunning(rec)) {
        if (Date.now() > deadline) signal('SIGKILL');
        await new Promise((r) => setTimeout(r, 100));
      }
      await fs.rm(path.join(workersDir(root), `${rec.tag}.json`), { force: true });
    }),
  );
}
