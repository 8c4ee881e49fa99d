// Several `strata worker` processes on one task queue, each standing for a machine (its own
// STRATA_HOME, or the test environment's), and what Temporal recorded of where a build's
// steps ran: the identity of the worker that started each activity, and the queue it was on.
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { Client, Connection } from '@temporalio/client';
import { execa } from 'execa';
import { STRATA_BIN } from './cli.js';
import { mountPoints, until } from './host.js';
import { testTemporalAddress } from './temporal.js';
import { stopChild } from './worker.js';
import { startRegistry, type TestRegistry } from './registry.js';
import { promises as fs } from 'node:fs';
import path from 'node:path';

export interface FleetWorker {
  /** The SDK's default identity, `pid@host`: what history records of the worker. */
  identity: string;
  /** The worker's own task queue (the steps of a stage it runs are routed there). */
  ownQueue: string;
  home: string;
  child: ChildProcess;
  log(): string;
  /** SIGKILL: the machine is gone, its runc containers and mounts left behind. */
  kill(): Promise<void>;
  /** SIGINT (running steps are cancelled, their containers removed), SIGKILL after 20 s. */
  stop(): Promise<void>;
}

/** Starts `strata worker` with `env` over the test environment; resolves once it polls. */
export async function startFleetWorker(env: NodeJS.ProcessEnv & { STRATA_TASK_QUEUE: string; STRATA_HOME: string }): Promise<FleetWorker> {
  let log = '';
  const child = spawn('node', [STRATA_BIN, 'worker'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  const worker: FleetWorker = {
    identity: `${child.pid}@${os.hostname()}`,
    ownQueue: '',
    home: env.STRATA_HOME,
    child,
    log: () => log,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
    stop: () => stopChild(child),
  };
  try {
    worker.ownQueue = await until('the worker to poll', async () => {
      if (child.exitCode !== null) throw new Error(`the worker exited ${child.exitCode}:\n${log}`);
      return /polling task queue "[^"]+" \(and its own "([^"]+)"\)/.exec(log)?.[1];
    });
  } catch (err) {
    await worker.kill();
    throw err;
  }
  return worker;
}

/** One attempt of a step activity, as the build's history recorded it. */
export interface StepAttempt {
  type: string;
  /** The step numbers its input names (a look-up names several). */
  steps: number[];
  /** The task queue it was scheduled on. */
  queue: string;
  /** The worker that started it. */
  identity: string;
  attempt: number;
  startedAt: Date;
}

async function withClient<T>(fn: (client: Client) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address: testTemporalAddress() });
  try {
    return await fn(new Client({ connection }));
  } finally {
    await connection.close();
  }
}

/** Every started attempt of the build's activities that name steps, in history order. */
export async function stepAttempts(workflowId: string): Promise<StepAttempt[]> {
  return withClient(async (client) => {
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const converter = client.options.loadedDataConverter.payloadConverter;
    const scheduled = new Map<string, { type: string; steps: number[]; queue: string }>();
    const out: StepAttempt[] = [];
    for (const e of history.events ?? []) {
      const s = e.activityTaskScheduledEventAttributes;
      if (s) {
        const payload = s.input?.payloads?.[0];
        const input = payload ? converter.fromPayload<{ step?: { number?: number }; steps?: { number?: number }[] }>(payload) : undefined;
        const steps = [input?.step?.number, ...(input?.steps ?? []).map((x) => x.number)].filter((n): n is number => typeof n === 'number');
        scheduled.set(String(e.eventId), { type: s.activityType?.name ?? '', steps, queue: s.taskQueue?.name ?? '' });
      }
      const started = e.activityTaskStartedEventAttributes;
      const of = started ? scheduled.get(String(started.scheduledEventId)) : undefined;
      if (started && of && of.steps.length > 0) {
        const seconds = Number(e.eventTime?.seconds ?? 0) + (e.eventTime?.nanos ?? 0) / 1e9;
        out.push({ ...of, identity: started.identity ?? '', attempt: started.attempt ?? 0, startedAt: new Date(seconds * 1000) });
      }
    }
    return out;
  });
}

/** The identity of the worker running the build's activity of `type` now (from its pending activities). */
export async function runningOn(workflowId: string, type: string): Promise<string | undefined> {
  return withClient(async (client) => {
    const d = await client.workflow.getHandle(workflowId).describe();
    const pending = (d.raw.pendingActivities ?? []).find((a) => a.activityType?.name === type && a.lastWorkerIdentity);
    return pending?.lastWorkerIdentity ?? undefined;
  });
}

/** When the build's history says an activity timed out (a lost worker), the first such time. */
export async function firstTimeout(workflowId: string): Promise<Date | undefined> {
  return withClient(async (client) => {
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const e = (history.events ?? []).find((x) => x.activityTaskTimedOutEventAttributes);
    if (!e) return undefined;
    return new Date((Number(e.eventTime?.seconds ?? 0) + (e.eventTime?.nanos ?? 0) / 1e9) * 1000);
  });
}

/** The activities that run a build's filesystem steps. */
export const STEP_ACTIVITIES = new Set(['copyStep', 'runStep', 'workdirStep']);

/**
 * What a test file of machines needs (call it at the top level): a Debian docker-registry,
 * temporary directories and `strata worker` processes, all stopped or removed when the file ends.
 */
export interface FleetFixture {
  registry: () => TestRegistry;
  tempDir: (prefix: string) => Promise<string>;
  startWorker: (env: Parameters<typeof startFleetWorker>[0]) => Promise<FleetWorker>;
  onEnd: (cleanup: () => Promise<unknown>) => void;
}

export function fleetFixture(): FleetFixture {
  let registry: TestRegistry | undefined;
  const cleanups: (() => Promise<unknown>)[] = [];
  const workers: FleetWorker[] = [];
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(async () => {
    for (const w of workers) await w.stop();
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await registry?.stop();
  });
  return {
    registry: () => registry!,
    async tempDir(prefix) {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
      cleanups.push(async () => {
        // A machine killed in the middle of a RUN leaves the step's overlay and network namespace mounted in its store.
        for (const m of (await mountPoints()).filter((p) => p.startsWith(`${dir}/`)).reverse()) await execa('umount', ['-l', m], { reject: false });
        await fs.rm(dir, { recursive: true, force: true });
      });
      return dir;
    },
    async startWorker(env) {
      const w = await startFleetWorker(env);
      workers.push(w);
      return w;
    },
    onEnd: (cleanup) => void cleanups.push(cleanup),
  };
}
