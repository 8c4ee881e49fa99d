// COPY from the build context: matched sources are written into an overlay of the parent
// image, and the upperdir is committed as the layer. docker's rules for sources and
// destinations (https://docs.docker.com/reference/dockerfile/#copy), noted where they bite.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import posixPath from 'node:path/posix';
import { UserInputError } from '../errors.js';
import { cleanRelative, resolveInRoot } from '../fsutil/scoped.js';
import type { Digest } from '../digest.js';
import { commitStep, type StepResult } from '../layer/commit.js';
import type { CopyStep } from '../plan/types.js';
import { mountOverlay } from '../runtime/overlay.js';
import type { Store } from '../store/store.js';
import { resolveOwner, type Owner } from './users.js';
import { matchSources } from './wildcard.js';

export interface CopySpec {
  /** chainID of the parent's top layer; undefined for an empty parent (scratch). */
  parentTop?: Digest;
  step: CopyStep;
  /** The unpacked build context. */
  contextDir: string;
  sourceDateEpoch?: number;
}

/** Runs one COPY step and commits its layer. Idempotent: the same inputs give the same layer. */
export async function executeCopy(store: Store, spec: CopySpec): Promise<StepResult> {
  const { step } = spec;
  const staging = await store.makeTempDir('copy');
  try {
    const inlineDir = await writeInlineFiles(staging, step);
    const mount = await mountOverlay(store, await store.chainOf(spec.parentTop), staging);
    try {
      await copyInto(mount.merged, spec, inlineDir);
    } finally {
      await mount.unmount();
    }
    return await commitStep(store, mount.upper, spec.parentTop, step.history, spec.sourceDateEpoch);
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
}

/**
 * Heredoc sources become files (0644, BuildKit's mode) in a directory of the staging area,
 * so they are copied like context files. Undefined when the step has none.
 */
async function writeInlineFiles(staging: string, step: CopyStep): Promise<string | undefined> {
  if (!step.inline?.length) return undefined;
  const dir = path.join(staging, 'inline');
  await fs.mkdir(dir);
  for (const f of step.inline) {
    const host = path.join(dir, f.name);
    if (path.dirname(host) !== dir) throw new UserInputError('COPY_SOURCE_INVALID', `${step.instruction} failed: heredoc name ${JSON.stringify(f.name)} cannot name a file`);
    await fs.writeFile(host, f.content, { mode: 0o644 });
    await fs.chmod(host, 0o644);
  }
  return dir;
}

async function copyInto(rootfs: string, spec: CopySpec, inlineDir?: string): Promise<void> {
  const { step, contextDir } = spec;
  const owner: Owner = step.chown ? await resolveOwner(rootfs, step.chown) : { uid: 0, gid: 0 };
  // Host paths of what to copy: context matches, then heredoc files.
  const matches: string[] = [];
  for (const src of step.sources) {
    const found = await matchSources(contextDir, src);
    if (found.length === 0) {
      if (/[*?[]/.test(src)) continue; // docker: a wildcard may match nothing, as long as something is copied
      throw new UserInputError('COPY_SOURCE_NOT_FOUND', `${step.instruction} failed: file not found in build context or excluded by .dockerignore: ${src}`);
    }
    matches.push(...found.map((rel) => path.join(contextDir, rel)));
  }
  if (inlineDir) matches.push(...(step.inline ?? []).map((f) => path.join(inlineDir, f.name)));
  if (matches.length === 0) throw new UserInputError('COPY_SOURCE_NOT_FOUND', `${step.instruction} failed: no source files were specified`);

  // A destination is a directory when written with a trailing `/`, or when it already is one.
  const destHost = await resolveInRoot(rootfs, step.dest, { followFinal: true });
  const destExistsAsDir = await isDir(destHost);
  const destIsDir = step.dest.endsWith('/') || destExistsAsDir;
  if (matches.length > 1 && !destIsDir) {
    throw new UserInputError('COPY_DEST_NOT_DIR', `${step.instruction} failed: when using ${step.instruction} with more than one source file, the destination must be a directory and end with a /`);
  }

  const ctx: CopyContext = { rootfs, owner, chmod: step.chmod, createdDirs: [] };
  for (const srcHost of matches) {
    const st = await fs.lstat(srcHost);
    if (st.isDirectory()) {
      // A directory copies its contents, not itself.
      await ensureDir(ctx, step.dest, st);
      await copyTree(ctx, srcHost, step.dest);
    } else {
      const target = destIsDir ? posixPath.join(step.dest, path.basename(srcHost)) : step.dest;
      await ensureDir(ctx, posixPath.dirname(target));
      await copyEntry(ctx, srcHost, target, st);
    }
  }
  // Parents' mtimes moved while children were written: restore the source times, deepest first.
  for (const { host, st } of ctx.createdDirs.reverse()) {
    await fs.utimes(host, st.atime, st.mtime);
  }
}

interface CopyContext {
  rootfs: string;
  owner: Owner;
  chmod?: number;
  /** Directories whose times are restored after all writes. */
  createdDirs: { host: string; st: import('node:fs').Stats }[];
}

/**
 * Makes sure the directory `imagePath` exists in the rootfs: missing parents are created
 * root-owned 0755 (as docker does); `like`, when given, gives the last one its mode/times.
 */
async function ensureDir(ctx: CopyContext, imagePath: string, like?: import('node:fs').Stats): Promise<string> {
  const host = await resolveInRoot(ctx.rootfs, imagePath, { followFinal: true });
  if (await isDir(host)) return host;
  const rel = path.relative(ctx.rootfs, host);
  let cur = ctx.rootfs;
  for (const part of rel.split(path.sep).filter(Boolean)) {
    cur = path.join(cur, part);
    try {
      const st = await fs.lstat(cur);
      if (!st.isDirectory()) {
        throw new UserInputError('COPY_DEST_NOT_DIR', `COPY failed: ${posixPath.join('/', path.relative(ctx.rootfs, cur))} is not a directory`);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await fs.mkdir(cur, { mode: 0o755 });
      await fs.chmod(cur, 0o755);
    }
  }
  if (like) {
    await fs.chmod(host, ctx.chmod ?? like.mode & 0o7777);
    await fs.lchown(host, ctx.owner.uid, ctx.owner.gid);
    ctx.createdDirs.push({ host, st: like });
  }
  return host;
}

/** Copies the contents of `srcDir` into the image directory `destImagePath`. */
async function copyTree(ctx: CopyContext, srcDir: string, destImagePath: string): Promise<void> {
  const names = (await fs.readdir(srcDir)).sort();
  for (const name of names) {
    const src = path.join(srcDir, name);
    const st = await fs.lstat(src);
    const dest = posixPath.join(destImagePath, name);
    if (st.isDirectory()) {
      // An existing directory, or a symlink to one (usrmerge's /lib), receives the contents.
      let host = await resolveInRoot(ctx.rootfs, dest, { followFinal: true });
      if (!(await isDir(host))) {
        host = await resolveInRoot(ctx.rootfs, dest);
        await replaceNonDir(host);
      }
      await fs.mkdir(host, { recursive: true });
      await fs.chmod(host, ctx.chmod ?? st.mode & 0o7777);
      await fs.lchown(host, ctx.owner.uid, ctx.owner.gid);
      ctx.createdDirs.push({ host, st });
      await copyTree(ctx, src, dest);
    } else {
      await copyEntry(ctx, src, dest, st);
    }
  }
}

/** Copies one non-directory entry to `destImagePath`, replacing what is there. */
async function copyEntry(ctx: CopyContext, src: string, destImagePath: string, st: import('node:fs').Stats): Promise<void> {
  const clean = cleanRelative(destImagePath);
  if (clean === undefined || clean === '') throw new UserInputError('COPY_DEST_INVALID', `COPY failed: invalid destination ${destImagePath}`);
  // The parent is resolved inside the rootfs; the last component is never followed.
  const parent = await resolveInRoot(ctx.rootfs, posixPath.dirname('/' + clean), { followFinal: true });
  const host = path.join(parent, posixPath.basename(clean));
  const existing = await fs.lstat(host).catch(() => undefined);
  if (existing?.isDirectory()) {
    throw new UserInputError('COPY_DEST_IS_DIR', `COPY failed: cannot overwrite directory ${destImagePath} with a file`);
  }
  if (existing) await fs.rm(host, { force: true });
  if (st.isSymbolicLink()) {
    await fs.symlink(await fs.readlink(src), host);
    await fs.lchown(host, ctx.owner.uid, ctx.owner.gid);
    await fs.lutimes(host, st.atime, st.mtime);
    return;
  }
  if (!st.isFile()) return; // the context holds only files, dirs and links
  await fs.copyFile(src, host);
  await fs.chown(host, ctx.owner.uid, ctx.owner.gid);
  await fs.chmod(host, ctx.chmod ?? st.mode & 0o7777);
  await fs.utimes(host, st.atime, st.mtime);
}

async function replaceNonDir(host: string): Promise<void> {
  const st = await fs.lstat(host).catch(() => undefined);
  if (st && !st.isDirectory()) await fs.rm(host, { force: true });
}

async function isDir(host: string): Promise<boolean> {
  const st = await fs.stat(host).catch(() => undefined);
  return st?.isDirectory() ?? false;
}
