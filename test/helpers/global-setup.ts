// Integration environment for the whole run: a private store, the embedded Temporal dev
// server on a free loopback port, one shared worker, and a busybox base image in the store.
// global-teardown.ts stops all of it.
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { REPO_ROOT, STRATA_BIN, strataOk } from './cli.js';
import { DIFF_BASE } from './differential.js';
import { joinDockerUsers } from './docker-users.js';
import globalTeardown from './global-teardown.js';

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A gRPC port whose UI neighbour (port + 1000) is free too. */
async function pickPort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 20000);
    if ((await portFree(port)) && (await portFree(port + 1000))) return port;
  }
  throw new Error('no free port pair for the Temporal dev server');
}

export default async function globalSetup(): Promise<void> {
  try {
    await setUp();
  } catch (err) {
    // jest skips the teardown when set-up fails: stop what was started here and now.
    await globalTeardown();
    throw err;
  }
}

async function setUp(): Promise<void> {
  const home = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-test-home-'));
  process.env.STRATA_HOME = home;
  process.env.STRATA_TEMPORAL_PORT = String(await pickPort());
  delete process.env.TEMPORAL_ADDRESS;
  process.env.STRATA_TASK_QUEUE = 'strata-test';
  // ADD tests clone bare repositories the tests make on this disk.
  process.env.STRATA_ALLOW_FILE_GIT = '1';
  // The shared worker's rights (worker/rights.ts): outputs under the home's out/, schedule
  // directories under the temp dir where tests make them; no pushes (push tests run a worker
  // with --allow-push on a queue of their own).
  process.env.STRATA_OUTPUT_DIR = path.join(home, 'out');
  await fs.mkdir(process.env.STRATA_OUTPUT_DIR);
  process.env.STRATA_SOURCE_DIR = os.tmpdir();
  delete process.env.STRATA_ALLOW_PUSH;
  // Failing builds fail at once unless a test gives them a --retry-window.
  process.env.STRATA_RETRY_WINDOW = '0';

  await strataOk(['server', 'start']);

  const rootfs = path.join(home, 'busybox-rootfs.tar');
  await execa('bash', [path.join(REPO_ROOT, 'scripts', 'busybox-rootfs.sh'), rootfs]);
  await strataOk(['import', '--change', 'CMD ["sh"]', rootfs, 'busybox:latest']);
  process.env.STRATA_TEST_BUSYBOX_TAR = rootfs;
  // The differential suites' base: the same bytes under the same name in strata and in
  // docker, so one Dockerfile serves both builders. Removed from docker by the teardown.
  await strataOk(['import', '--change', 'CMD ["sh"]', rootfs, DIFF_BASE]);
  await joinDockerUsers();
  await execa('docker', ['import', '--change', 'CMD ["sh"]', rootfs, DIFF_BASE]);

  const log = await fs.open(path.join(home, 'worker.log'), 'a');
  const worker = spawn('node', [STRATA_BIN, 'worker'], { stdio: ['ignore', log.fd, log.fd], env: process.env });
  await log.close();
  (globalThis as { strataWorker?: typeof worker }).strataWorker = worker;
  await waitForWorker(home);
}

/** The worker logs its banner once it polls. */
async function waitForWorker(home: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const text = await fs.readFile(path.join(home, 'worker.log'), 'utf8').catch(() => '');
    if (text.includes('polling task queue')) return;
    const worker = (globalThis as { strataWorker?: { exitCode: number | null } }).strataWorker;
    if (worker && worker.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the shared test worker did not start; see ${home}/worker.log`);
}
