// A `strata worker` process of a test's own (its own queue, or its own store), for tests that
// restart workers or need a store no other test touches.
import { spawn, type ChildProcess } from 'node:child_process';
import { STRATA_BIN } from './cli.js';
import { until } from './host.js';

export interface TestWorker {
  child: ChildProcess;
  log: () => string;
  /** SIGTERM, then SIGKILL after 15 s; resolves once it exited. */
  stop: () => Promise<void>;
}

/** Starts `strata worker` with `env` over the test's environment; resolves once it polls. */
export async function startWorker(env: NodeJS.ProcessEnv): Promise<TestWorker> {
  let log = '';
  const child = spawn('node', [STRATA_BIN, 'worker'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  await until('the worker to poll', async () => {
    if (child.exitCode !== null) throw new Error(`the worker exited ${child.exitCode}:\n${log}`);
    return log.includes('polling task queue') ? true : undefined;
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  return { child, log: () => log, stop };
}
