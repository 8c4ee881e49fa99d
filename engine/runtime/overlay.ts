// Overlay mounts for a step's rootfs: the parent chain's snapshots as lowerdirs, a fresh
// upperdir that becomes the step's layer. Mounted with the store root as working
// directory so lowerdirs are short relative links (l/<id>), and 200 layers fit the
// kernel's one-page limit on mount options.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import type { Digest } from '../digest.js';
import { EngineError } from '../errors.js';
import type { Store } from '../store/store.js';
import { mountOptionPath } from './mountopts.js';

export interface OverlayMount {
  /** The merged view: the rootfs a step writes into. */
  merged: string;
  /** The upperdir: after unmount, exactly the step's changes in overlay format. */
  upper: string;
  unmount(): Promise<void>;
}

/** The kernel refuses mount data longer than one page. */
const MOUNT_DATA_LIMIT = 4096;

/**
 * Mounts `chain` (bottom layer first, chainIDs) under `dir` (a private staging dir):
 * dir/merged, dir/upper, dir/work. The caller must call unmount() (in a finally).
 */
export async function mountOverlay(store: Store, chain: Digest[], dir: string): Promise<OverlayMount> {
  const merged = path.join(dir, 'merged');
  const upper = path.join(dir, 'upper');
  const work = path.join(dir, 'work');
  await Promise.all([merged, upper, work].map((d) => fs.mkdir(d, { recursive: true })));
  await fs.chmod(upper, 0o755);
  const rel = (p: string) => mountOptionPath(path.relative(store.root, p));
  let lowers = [...chain].reverse().map((c) => mountOptionPath(store.shortLink(c)));
  if (lowers.length === 0) {
    // overlayfs needs a lowerdir; an empty one stands for scratch.
    const empty = path.join(dir, 'empty');
    await fs.mkdir(empty, { recursive: true });
    lowers = [rel(empty)];
  }
  // redirect_dir/metacopy/index off: the upperdir must hold plain copies and whiteouts only,
  // so it can be committed as an OCI layer and used later as a lowerdir anywhere.
  const data = `lowerdir=${lowers.join(':')},upperdir=${rel(upper)},workdir=${rel(work)},redirect_dir=off,metacopy=off,index=off`;
  await mountWith(store, chain, data, merged);
  let mounted = true;
  return {
    merged,
    upper,
    async unmount() {
      if (!mounted) return;
      await unmountPath(merged);
      mounted = false;
      await fs.rm(work, { recursive: true, force: true });
    },
  };
}

/** Mounts an overlay with `data` (paths relative to the store root, checked by mountOptionPath) at `target`. */
async function mountWith(store: Store, chain: Digest[], data: string, target: string): Promise<void> {
  if (data.length >= MOUNT_DATA_LIMIT) {
    throw new EngineError('TOO_MANY_LAYERS', `mount overlay: ${chain.length} layers do not fit one mount (${data.length} bytes of options)`);
  }
  try {
    await execa('mount', ['-t', 'overlay', 'overlay', '-o', data, target], { cwd: store.root });
  } catch (err) {
    throw new EngineError('MOUNT_FAILED', `mount overlay: ${(err as { stderr?: string }).stderr || (err as Error).message}`, { cause: err });
  }
}

/** Unmounts, falling back to a lazy unmount when something still holds the mount busy. */
export async function unmountPath(p: string): Promise<void> {
  try {
    await execa('umount', [p]);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    if (/not mounted|no mount point/i.test(stderr)) return;
    await execa('umount', ['-l', p]);
  }
}

/**
 * Mounts `chain` read-only under dir/ro: the merged view of a stage or image, for COPY --from
 * to read. overlayfs wants two lowerdirs when there is no upperdir, so an empty directory
 * lies at the bottom (which also stands for scratch). The caller must call unmount().
 */
export async function mountReadOnly(store: Store, chain: Digest[], dir: string): Promise<{ root: string; unmount(): Promise<void> }> {
  const root = path.join(dir, 'ro');
  const empty = path.join(dir, 'ro-empty');
  await Promise.all([root, empty].map((d) => fs.mkdir(d, { recursive: true })));
  const lowers = [...[...chain].reverse().map((c) => store.shortLink(c)), path.relative(store.root, empty)].map(mountOptionPath);
  const data = `ro,lowerdir=${lowers.join(':')},redirect_dir=off,metacopy=off,index=off`;
  await mountWith(store, chain, data, root);
  let mounted = true;
  return {
    root,
    async unmount() {
      if (!mounted) return;
      await unmountPath(root);
      mounted = false;
    },
  };
}
