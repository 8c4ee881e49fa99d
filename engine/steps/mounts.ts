// RUN --mount: turns the planned mounts into OCI mounts for runc, and undoes them after the
// step. None of them is under the step's overlay upperdir, so none can end up in the layer.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import lockfile from 'proper-lockfile';
import { digestHex, sha256, type Digest } from '../digest.js';
import { EngineError, UserInputError } from '../errors.js';
import { exists } from '../fsutil/atomic.js';
import { resolveInRoot } from '../fsutil/scoped.js';
import type { MountSource, RunMount } from '../plan/types.js';
import { mountOptionPath, mountOptionValue } from '../runtime/mountopts.js';
import { mountOverlay, unmountPath } from '../runtime/overlay.js';
import type { OciMount } from '../runtime/runc.js';
import type { Store } from '../store/store.js';

/** What a step's mounts read besides the store's layers. */
export interface MountInputs {
  /** chainID of the top layer of each stage a mount names (undefined: an empty stage). */
  stageTops: Record<number, Digest | undefined>;
  /** The unpacked build context. */
  contextDir: () => Promise<string>;
  /** The build's secret of this id, or undefined when none was given. */
  secret: (id: string) => Promise<Buffer | undefined>;
}

export interface PreparedMounts {
  oci: OciMount[];
  /** `NAME=value` for secrets with `env=`. */
  env: string[];
  /** Unmounts and unlocks; call it (in a finally) once the container is gone. */
  release(): Promise<void>;
}

/** Where cache mounts live on the worker: one directory per id, kept between builds. */
export function cacheMountDir(store: Store, id: string): string {
  return path.join(store.root, 'cache', 'mounts', digestHex(sha256(id)));
}

/** Prepares every mount under `dir` (a private staging directory). */
export async function prepareRunMounts(store: Store, mounts: RunMount[], dir: string, inputs: MountInputs): Promise<PreparedMounts> {
  const undo: (() => Promise<void>)[] = [];
  const prepared: PreparedMounts = {
    oci: [],
    env: [],
    async release() {
      for (const u of undo.splice(0).reverse()) await u();
    },
  };
  const bind = (target: string, source: string, readonly: boolean) => {
    prepared.oci.push({ destination: target, type: 'bind', source, options: ['rbind', readonly ? 'ro' : 'rw'] });
  };
  try {
    for (const [i, m] of mounts.entries()) {
      const own = path.join(dir, `m${i}`);
      await fs.mkdir(own, { recursive: true });
      switch (m.type) {
        case 'bind': {
          const src = await mountSourcePath(store, m.from, m.source, own, inputs, undo);
          if (m.readwrite && m.from.kind === 'context') bind(m.target, await writableCopy(src, own, undo), false);
          else bind(m.target, src, !m.readwrite); // a stage or image is an overlay: its writes are discarded
          break;
        }
        case 'cache':
          bind(m.target, await cacheDir(store, m, own, inputs, undo), m.readonly);
          break;
        case 'tmpfs':
          prepared.oci.push({ destination: m.target, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', ...(m.size ? [`size=${mountOptionValue(m.size)}`] : [])] });
          break;
        case 'secret': {
          const value = await inputs.secret(m.id);
          if (value === undefined) {
            if (m.required) {
              throw new UserInputError('SECRET_NOT_FOUND', `secret ${m.id} is required but was not given (strata build --secret id=${m.id},src=FILE)`);
            }
            break;
          }
          if (m.env) prepared.env.push(`${m.env}=${value.toString('utf8')}`);
          if (m.target) bind(m.target, await secretFile(m, value, own, undo), true);
          break;
        }
        case 'inline': {
          for (const f of m.files) {
            await fs.writeFile(path.join(own, f.name), f.content, { mode: f.mode });
            await fs.chmod(path.join(own, f.name), f.mode);
          }
          await fs.chmod(own, 0o755);
          bind(m.target, own, true);
          break;
        }
      }
    }
  } catch (err) {
    await prepared.release();
    throw err;
  }
  return prepared;
}

/** The host path of `source` in a mount's `from`: the context, or an overlay of a stage or image. */
async function mountSourcePath(store: Store, from: MountSource, source: string, own: string, inputs: MountInputs, undo: (() => Promise<void>)[]): Promise<string> {
  let root: string;
  let what: string;
  if (from.kind === 'context') {
    root = await inputs.contextDir();
    what = 'the build context';
  } else {
    let top: Digest | undefined;
    if (from.kind === 'stage') {
      if (!(from.stage in inputs.stageTops)) throw new EngineError('MOUNT_STAGE_MISSING', `mount: stage ${from.stage} was not built before this step`);
      top = inputs.stageTops[from.stage];
      what = `stage ${from.stage}`;
    } else {
      const img = await store.loadImage(from.manifestDigest);
      top = img.layers[img.layers.length - 1]?.chainId;
      what = from.ref;
    }
    const mount = await mountOverlay(store, await store.chainOf(top), own);
    undo.push(() => mount.unmount());
    root = mount.merged;
  }
  const host = await resolveInRoot(root, source, { followFinal: true });
  if (!(await fs.lstat(host).catch(() => undefined))) {
    throw new UserInputError('MOUNT_SOURCE_NOT_FOUND', `mount: source ${source} not found in ${what}`);
  }
  return host;
}

/**
 * A writable view of a context path whose changes are thrown away with the step. The
 * context path is user-named (`x:..`, `a,b`) and must never enter the overlay's options:
 * a symlink of a fixed name in the mount's own directory points at it (overlayfs follows
 * it like any path), and the options name only `lower`, `upper` and `work`, relative to
 * that directory as the mount's cwd.
 */
async function writableCopy(src: string, own: string, undo: (() => Promise<void>)[]): Promise<string> {
  const st = await fs.stat(src);
  if (!st.isDirectory()) {
    const copy = path.join(own, 'file');
    await fs.copyFile(src, copy);
    return copy;
  }
  const [upper, work, merged] = ['upper', 'work', 'merged'].map((d) => path.join(own, d));
  await Promise.all([upper, work, merged].map((d) => fs.mkdir(d!)));
  await fs.symlink(src, path.join(own, 'lower'));
  const data = ['lower', 'upper', 'work'].map(mountOptionPath);
  try {
    await execa('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${data[0]},upperdir=${data[1]},workdir=${data[2]}`, merged!], { cwd: own });
  } catch (err) {
    throw new EngineError('MOUNT_FAILED', `mount: writable context view: ${(err as { stderr?: string }).stderr || (err as Error).message}`, { cause: err });
  }
  undo.push(() => unmountPath(merged!));
  return merged!;
}

/**
 * The cache's directory, created (with mode, owner and `from` content) on first use.
 * `locked` waits for other users; `private` takes a fresh empty directory while another holds it.
 */
async function cacheDir(store: Store, m: RunMount & { type: 'cache' }, own: string, inputs: MountInputs, undo: (() => Promise<void>)[]): Promise<string> {
  const dir = cacheMountDir(store, m.id);
  if (!(await exists(dir))) {
    await fs.mkdir(path.dirname(dir), { recursive: true });
    const fresh = await store.makeTempDir('cache-mount');
    try {
      if (m.from) {
        const src = await mountSourcePath(store, m.from, m.source, path.join(own, 'from'), inputs, undo);
        await execa('cp', ['-a', '--', `${src}/.`, fresh]);
      }
      await fs.chmod(fresh, m.mode);
      await fs.chown(fresh, m.uid, m.gid);
      await fs.rename(fresh, dir);
    } catch (err) {
      await fs.rm(fresh, { recursive: true, force: true });
      // Another step created it first: use theirs.
      if (!['EEXIST', 'ENOTEMPTY'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
    }
  }
  // Its last use, for `builder prune --filter until=` and for the GC to leave it to a running build.
  const now = new Date();
  await fs.utimes(dir, now, now).catch(() => undefined);
  if (m.sharing === 'shared') return dir;
  try {
    const release = await lockfile.lock(dir, {
      retries: m.sharing === 'locked' ? { retries: 100_000, minTimeout: 100, maxTimeout: 2000 } : 0,
      stale: 30_000,
    });
    undo.push(() => release());
    return dir;
  } catch (err) {
    if (m.sharing === 'locked' || (err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
    const scratch = path.join(own, 'private');
    await fs.mkdir(scratch, { mode: m.mode });
    await fs.chmod(scratch, m.mode);
    await fs.chown(scratch, m.uid, m.gid);
    return scratch;
  }
}

/** The secret on a private tmpfs (never on disk here), with its mode and owner. */
async function secretFile(m: RunMount & { type: 'secret' }, value: Buffer, own: string, undo: (() => Promise<void>)[]): Promise<string> {
  try {
    await execa('mount', ['-t', 'tmpfs', '-o', `nodev,nosuid,noexec,mode=0711,size=${mountOptionValue(Math.max(value.length * 2, 65536))}`, 'tmpfs', own]);
  } catch (err) {
    throw new EngineError('MOUNT_FAILED', `mount: secret ${m.id}: ${(err as { stderr?: string }).stderr || (err as Error).message}`, { cause: err });
  }
  undo.push(() => unmountPath(own));
  const file = path.join(own, 'secret');
  await fs.writeFile(file, value, { mode: 0o600 });
  await fs.chown(file, m.uid, m.gid);
  await fs.chmod(file, m.mode);
  return file;
}
