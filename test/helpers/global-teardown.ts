// Stops what global-setup.ts started and removes the private store.
import type { ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { execa } from 'execa';
import { strata } from './cli.js';
import { DIFF_BASE } from './differential.js';
import { leaveDockerUsers } from './docker-users.js';

export default async function globalTeardown(): Promise<void> {
  const worker = (globalThis as { strataWorker?: ChildProcess }).strataWorker;
  if (worker && worker.exitCode === null) {
    const exited = new Promise((r) => worker.once('exit', r));
    worker.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 15_000)))]);
    clearTimeout(timer);
    if (worker.exitCode === null) worker.kill('SIGKILL');
  }
  // Background workers tests started (builds on queues no shared worker polls), then the server.
  await strata(['worker', 'stop', '--all']);
  await strata(['server', 'stop']);
  // Another run on the same dockerd may still build FROM the shared base: the last one removes it.
  if (await leaveDockerUsers()) await execa('docker', ['rmi', '-f', DIFF_BASE], { reject: false });
  const home = process.env.STRATA_HOME;
  if (home && home.includes('strata-test-home-')) {
    // A failed test may leave an overlay mounted under the store: unmount before removing.
    const mounts = (await fs.readFile('/proc/mounts', 'utf8')).split('\n').map((l) => l.split(' ')[1] ?? '');
    for (const m of mounts.filter((m) => m.startsWith(home)).reverse()) await execa('umount', ['-l', m], { reject: false });
    if (!process.env.STRATA_TEST_KEEP) await fs.rm(home, { recursive: true, force: true });
  }
}
