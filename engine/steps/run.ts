// RUN: the command runs with runc on an overlay of the parent chain; the upperdir, less the
// mountpoints runc had to create, is committed as the layer.
import { createWriteStream, promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import posixPath from 'node:path/posix';
import { execa } from 'execa';
import type { Digest } from '../digest.js';
import { EngineError, UserInputError } from '../errors.js';
import { atInRoot, lstatInRoot, resolveInRoot } from '../fsutil/scoped.js';
import { commitStep, type StepResult } from '../layer/commit.js';
import { DEFAULT_PATH } from '../plan/config.js';
import type { RunStep } from '../plan/types.js';
import { mountOverlay } from '../runtime/overlay.js';
import { requireHostNetwork, startNetwork, type HostNetworkGrant, type NetworkMode } from '../runtime/network.js';
import { RUNTIME_MOUNTPOINTS, runContainer } from '../runtime/runc.js';
import type { Store } from '../store/store.js';
import { prepareRunMounts, type MountInputs } from './mounts.js';
import { resolveExecUser } from './users.js';

/** How much of the end of the output a failure message quotes. */
const TAIL_LINES = 10;

export interface RunStepSpec {
  parentTop?: Digest;
  step: RunStep;
  /** The build's network; the step's own `--network` wins. */
  network: NetworkMode;
  /** Whether `host` may be used: the build asked for network.host and the worker allows it. */
  hostNetwork: HostNetworkGrant;
  sourceDateEpoch?: number;
  timeoutMs?: number;
  /** The whole output is written here. */
  logFile: string;
  onOutput?: (chunk: Buffer) => void;
  signal?: AbortSignal;
  /** What the step's `--mount`s read; required when it has any. */
  mountInputs?: MountInputs;
}

/** The command exited non-zero: a user error, never retried. */
export class RunFailedError extends UserInputError {
  constructor(
    readonly exitCode: number,
    readonly tail: string,
    message: string,
  ) {
    super('RUN_FAILED', message);
  }
}

export async function executeRun(store: Store, spec: RunStepSpec): Promise<StepResult> {
  const { step } = spec;
  const network = step.network ?? spec.network;
  if (network === 'host') requireHostNetwork(spec.hostNetwork, step.network === 'host' ? 'RUN --network=host' : 'RUN with strata build --network=host');
  const staging = await store.makeTempDir('run');
  // The network comes up while the rootfs is mounted and the mounts are prepared.
  const networking = startNetwork(network, path.join(staging, 'net'));
  networking.catch(() => undefined); // its failure surfaces where the container awaits it
  const closeNetwork = () =>
    networking.then(
      (n) => n.close(),
      () => undefined,
    );
  try {
    const mount = await mountOverlay(store, await store.chainOf(spec.parentTop), staging);
    let result;
    const tail = new OutputTail();
    const before = new Map<string, Stats | undefined>();
    const targets = (step.mounts ?? []).map((m) => m.target).filter((t): t is string => t !== undefined);
    try {
      for (const p of [...RUNTIME_MOUNTPOINTS, '/etc', ...targets.flatMap(withParents)]) {
        before.set(p, await lstatInRoot(mount.merged, p));
      }
      const user = await resolveExecUser(mount.merged, step.user);
      const cwd = step.workdir || '/';
      // docker creates a missing working directory when the step runs; it is part of the layer.
      await fs.mkdir(await resolveInRoot(mount.merged, cwd, { followFinal: true }), { recursive: true, mode: 0o755 });
      const env = withDefaults(step.env, user.home);
      await fs.mkdir(path.dirname(spec.logFile), { recursive: true });
      const noInputs = (): never => {
        throw new EngineError('MOUNT_INPUTS_MISSING', 'run step: mounts need their inputs');
      };
      const mounts = await prepareRunMounts(store, step.mounts ?? [], path.join(staging, 'mounts'), spec.mountInputs ?? { stageTops: {}, contextDir: noInputs, secret: noInputs });
      const log = createWriteStream(spec.logFile);
      try {
        result = await runContainer({
          mounts: mounts.oci,
          rootfs: mount.merged,
          bundleDir: path.join(staging, 'bundle'),
          process: { args: step.args, env: [...env, ...mounts.env], cwd, uid: user.uid, gid: user.gid, additionalGids: user.additionalGids },
          network: await networking,
          signal: spec.signal,
          timeoutMs: spec.timeoutMs,
          onOutput: (chunk) => {
            log.write(chunk);
            tail.push(chunk);
            spec.onOutput?.(chunk);
          },
        });
      } finally {
        await new Promise<void>((resolve) => log.end(resolve));
        await mounts.release();
      }
    } finally {
      await Promise.all([mount.unmount(), closeNetwork()]);
    }
    if (result.cancelled) throw new EngineError('CANCELLED', 'run step: cancelled');
    const shown = step.args.join(' ');
    if (result.timedOut) {
      throw new UserInputError('STEP_TIMEOUT', `process "${shown}" was killed after the step timeout of ${Math.round((spec.timeoutMs ?? 0) / 1000)}s${tail.format()}`);
    }
    if (result.exitCode !== 0) {
      throw new RunFailedError(result.exitCode, tail.text(), `process "${shown}" did not complete successfully: exit code: ${result.exitCode}${tail.format()}`);
    }
    await dropCreatedMountpoints(mount.upper, before);
    await dropMountTargets(mount.upper, before, targets);
    return await commitStep(store, mount.upper, spec.parentTop, step.history, spec.sourceDateEpoch);
  } finally {
    await closeNetwork(); // closed already unless the mount failed
    await fs.rm(staging, { recursive: true, force: true });
  }
}

function withDefaults(env: string[], home: string): string[] {
  const out = [...env];
  const has = (k: string) => out.some((e) => e.startsWith(`${k}=`));
  if (!has('PATH')) out.unshift(`PATH=${DEFAULT_PATH}`);
  if (!has('HOME')) out.push(`HOME=${home}`);
  return out;
}

/**
 * runc creates /proc, /etc/hosts, … when the image lacks them, so it can mount over them.
 * Those are not the step's changes: remove them from the upperdir (when still empty), and a
 * parent that only holds them and kept its owner and mode. The step may have left symlinks
 * anywhere (`/etc` → `/`): every path is reached through atInRoot, which follows none.
 */
async function dropCreatedMountpoints(upper: string, before: Map<string, Stats | undefined>): Promise<void> {
  for (const p of RUNTIME_MOUNTPOINTS) {
    if (before.get(p)) continue;
    await atInRoot(upper, p, async (e) => {
      if (e.stats.isFile() && e.stats.size === 0) await e.remove();
      else if (e.stats.isDirectory() && (await e.list()).length === 0) await e.remove();
    });
  }
  const etc = before.get('/etc');
  await atInRoot(upper, 'etc', async (e) => {
    if (!e.stats.isDirectory() || (await e.list()).length > 0) return;
    if (!etc || (etc.isDirectory() && sameOwnerAndMode(etc, e.stats))) await e.remove();
  });
}

/** `/a/b/c` → [`/a`, `/a/b`, `/a/b/c`]. */
function withParents(p: string): string[] {
  const out: string[] = [];
  for (let cur = posixPath.resolve('/', p); cur !== '/'; cur = posixPath.dirname(cur)) out.unshift(cur);
  return out;
}

/**
 * runc creates a `--mount` target (and its missing parents) in the rootfs to mount on it. The
 * step cannot write there while the mount covers it, so an empty file or directory that was
 * not there before is runc's: remove it, and a parent whose only change was that child.
 * Reached through atInRoot: a parent the step replaced by a symlink is left alone.
 */
async function dropMountTargets(upper: string, before: Map<string, Stats | undefined>, targets: string[]): Promise<void> {
  const paths = [...new Set(targets.flatMap(withParents))].sort((a, b) => b.split('/').length - a.split('/').length);
  for (const p of paths) {
    await atInRoot(upper, p, async (e) => {
      const now = e.stats;
      const empty = now.isDirectory() ? (await e.list()).length === 0 : now.isFile() && now.size === 0;
      if (!empty) return;
      const was = before.get(p);
      if (!was) await e.remove();
      else if (was.isDirectory() && now.isDirectory() && sameOwnerAndMode(was, now) && !(await isOpaque(e.handlePath))) {
        // Copied up only because runc made a child in it; the lower layer still has it.
        await e.remove();
      }
    });
  }
}

function sameOwnerAndMode(a: Stats, b: Stats): boolean {
  return (a.mode & 0o7777) === (b.mode & 0o7777) && a.uid === b.uid && a.gid === b.gid;
}

/**
 * An opaque upper directory hides the lower one's entries: removing it would bring them back.
 * `dir` is a handle path (/proc/self/fd/N) of a directory reached without symlinks.
 */
async function isOpaque(dir: string): Promise<boolean> {
  const r = await execa('getfattr', ['--only-values', '--absolute-names', '-n', 'trusted.overlay.opaque', dir], { reject: false, encoding: 'utf8' });
  return r.exitCode === 0 && String(r.stdout).trim() === 'y';
}

/** Keeps the last lines of the output for error messages. */
class OutputTail {
  private buf = '';
  push(chunk: Buffer): void {
    this.buf = (this.buf + chunk.toString('utf8')).slice(-8192);
  }
  text(): string {
    return this.buf
      .split('\n')
      .filter((l, i, all) => l !== '' || i < all.length - 1)
      .slice(-TAIL_LINES)
      .join('\n');
  }
  format(): string {
    const t = this.text();
    return t ? `\n--- last lines of output ---\n${t}` : '';
  }
}
