// A `strata worker` of a test's own (its own task queue, flags and rights), stopped by the test.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { STRATA_BIN } from './cli.js';

export interface TestWorker {
  /** The task queue it polls: give it to the CLI as STRATA_TASK_QUEUE. */
  queue: string;
  log(): string;
  stop(): Promise<void>;
}

/** Starts `strata worker ARGS` on a fresh queue with `env` over the test environment; resolves once it polls. */
export async function startTestWorker(args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<TestWorker> {
  const queue = `own-${randomBytes(4).toString('hex')}`;
  let log = '';
  const child: ChildProcess = spawn('node', [STRATA_BIN, 'worker', ...args], {
    env: { ...process.env, STRATA_TASK_QUEUE: queue, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  const deadline = Date.now() + 60_000;
  while (!log.includes('polling task queue')) {
    if (child.exitCode !== null) throw new Error(`the worker exited ${child.exitCode}:\n${log}`);
    if (Date.now() > deadline) throw new Error(`the worker did not poll within a minute:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    queue,
    log: () => log,
    stop: () => stopChild(child),
  };
}

/** Stops a worker process as Ctrl-C does (its graceful shutdown), killing it after 20 s. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGINT');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}
