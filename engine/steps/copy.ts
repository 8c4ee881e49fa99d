// COPY and ADD: matched sources are written into an overlay of the parent image, and the
// upperdir is committed as the layer. docker's rules for sources and destinations
// (https://docs.docker.com/reference/dockerfile/#copy), noted where they bite; what ADD
// does beyond COPY (archives, URLs, git) is in add.ts.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import posixPath from 'node:path/posix';
import { UserInputError } from '../errors.js';
import { classifyAddSource, downloadName } from '../plan/addSource.js';
import { cleanRelative, resolveInRoot } from '../fsutil/scoped.js';
import type { Digest } from '../digest.js';
import { commitStep, type StepResult } from '../layer/commit.js';
import type { CopyStep } from '../plan/types.js';
import { mountOverlay } from '../runtime/overlay.js';
import type { Store } from '../store/store.js';
import { cloneGit, downloadUrl, extractArchive, isTarArchive } from './add.js';
import { resolveOwner, type Owner } from './users.js';
import { matchSources } from './wildcard.js';

export interface CopySpec {
  /** chainID of the parent's top layer; undefined for an empty parent (scratch). */
  parentTop?: Digest;
  step: CopyStep;
  /** The unpacked build context. */
  contextDir: string;
  sourceDateEpoch?: number;
  /** ADD may clone file:// git repositories, i.e. read the worker's own disk. */
  allowFileGit?: boolean;
}

/** One thing to write, in the order of the sources. */
type CopyItem =
  /** A context file or directory, or a heredoc's file. */
  | { kind: 'local'; host: string }
  | { kind: 'download'; file: string; name: string; mtime?: number }
  /** A git checkout: its contents go into the destination directory. */
  | { kind: 'tree'; dir: string };

/** Runs one COPY step and commits its layer. Idempotent: the same inputs give the same layer. */
export async function executeCopy(store: Store, spec: CopySpec): Promise<StepResult> {
  const { step } = spec;
  const staging = await store.makeTempDir('copy');
  try {
    // Downloads and clones finish before the mount: a failed one leaves nothing behind.
    const items = await gatherSources(spec, path.join(staging, 'fetched'), await writeInlineFiles(staging, step));
    const mount = await mountOverlay(store, await store.chainOf(spec.parentTop), staging);
    try {
      await copyInto(mount.merged, spec, items);
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

/**
 * Matches context sources and, for ADD, downloads URLs and clones repositories into
 * `fetchDir`; heredoc files (in `inlineDir`) come last, as BuildKit copies them.
 */
async function gatherSources(spec: CopySpec, fetchDir: string, inlineDir: string | undefined): Promise<CopyItem[]> {
  const { step, contextDir } = spec;
  const items: CopyItem[] = [];
  for (const src of step.sources) {
    const source = step.instruction === 'ADD' ? classifyAddSource(src) : { kind: 'local' as const, path: src };
    if (!source) throw new UserInputError('ADD_SOURCE_INVALID', `ADD failed: unsupported source URL ${src}`);
    if (source.kind === 'http') {
      await fs.mkdir(fetchDir, { recursive: true });
      const file = path.join(fetchDir, `download-${items.length}`);
      const got = await downloadUrl(source.url, file, step.checksum);
      items.push({ kind: 'download', file, name: downloadName(source.url), mtime: got.mtime });
      continue;
    }
    if (source.kind === 'git') {
      if (source.local && !spec.allowFileGit) {
        throw new UserInputError('ADD_GIT_FILE_DENIED', `ADD failed: ${src} reads the worker's disk; the worker allows file:// git sources only with STRATA_ALLOW_FILE_GIT=1`);
      }
      await fs.mkdir(fetchDir, { recursive: true });
      const dir = await cloneGit(source, path.join(fetchDir, `git-${items.length}`), step.keepGitDir ?? false);
      items.push({ kind: 'tree', dir });
      continue;
    }
    const found = await matchSources(contextDir, source.path);
    if (found.length === 0) {
      if (/[*?[]/.test(src)) continue; // docker: a wildcard may match nothing, as long as something is copied
      throw new UserInputError('COPY_SOURCE_NOT_FOUND', `${step.instruction} failed: file not found in build context or excluded by .dockerignore: ${src}`);
    }
    for (const rel of found) items.push({ kind: 'local', host: path.join(contextDir, rel) });
  }
  if (inlineDir) for (const f of step.inline ?? []) items.push({ kind: 'local', host: path.join(inlineDir, f.name) });
  if (items.length === 0) throw new UserInputError('COPY_SOURCE_NOT_FOUND', `${step.instruction} failed: no source files were specified`);
  return items;
}

async function copyInto(rootfs: string, spec: CopySpec, items: CopyItem[]): Promise<void> {
  const { step } = spec;
  const owner: Owner = step.chown ? await resolveOwner(rootfs, step.chown) : { uid: 0, gid: 0 };

  // A destination is a directory when written with a trailing `/`, or when it already is one.
  const destHost = await resolveInRoot(rootfs, step.dest, { followFinal: true });
  const destExistsAsDir = await isDir(destHost);
  const destIsDir = step.dest.endsWith('/') || destExistsAsDir;
  if (items.length > 1 && !destIsDir) {
    throw new UserInputError('COPY_DEST_NOT_DIR', `${step.instruction} failed: when using ${step.instruction} with more than one source file, the destination must be a directory and end with a /`);
  }

  const ctx: CopyContext = { instruction: step.instruction, rootfs, owner, chmod: step.chmod, createdDirs: [] };
  for (const item of items) {
    if (item.kind === 'download') {
      const target = destIsDir ? posixPath.join(step.dest, item.name) : step.dest;
      await ensureDir(ctx, posixPath.dirname(target), undefined, true);
      // docker gives a downloaded file mode 0600 and the server's Last-Modified time.
      const st = await fs.stat(item.file);
      const mtime = item.mtime ?? st.mtimeMs / 1000;
      await copyEntry({ ...ctx, chmod: ctx.chmod ?? 0o600 }, item.file, target, st, mtime);
      continue;
    }
    if (item.kind === 'tree') {
      await fs.chmod(item.dir, 0o755);
      await ensureDir(ctx, step.dest, await fs.lstat(item.dir));
      await copyTree(ctx, item.dir, step.dest);
      continue;
    }
    const srcHost = item.host;
    const st = await fs.lstat(srcHost);
    if (step.instruction === 'ADD' && st.isFile() && (await isTarArchive(srcHost))) {
      // A local archive is extracted into the destination, a directory whatever its spelling.
      await extractArchive(srcHost, await ensureDir(ctx, step.dest));
      continue;
    }
    if (st.isDirectory()) {
      // A directory copies its contents, not itself.
      await ensureDir(ctx, step.dest, st);
      await copyTree(ctx, srcHost, step.dest);
    } else {
      const target = destIsDir ? posixPath.join(step.dest, path.basename(srcHost)) : step.dest;
      await ensureDir(ctx, posixPath.dirname(target), undefined, true);
      await copyEntry(ctx, srcHost, target, st);
    }
  }
  // Parents' mtimes moved while children were written: restore the source times, deepest first.
  for (const { host, st } of ctx.createdDirs.reverse()) {
    await fs.utimes(host, st.atime, st.mtime);
  }
}

interface CopyContext {
  instruction: 'COPY' | 'ADD';
  rootfs: string;
  owner: Owner;
  chmod?: number;
  /** Directories whose times are restored after all writes. */
  createdDirs: { host: string; st: import('node:fs').Stats }[];
}

/**
 * Makes sure the directory `imagePath` exists in the rootfs: missing parents are created
 * root-owned 0755 (as docker does); `like`, when given, gives the last one its mode/times.
 * `ownCreated`: the new directories get --chown's owner, as docker's builder does for the
 * parents of a file it copies (not for a directory's or an archive's).
 */
async function ensureDir(ctx: CopyContext, imagePath: string, like?: import('node:fs').Stats, ownCreated = false): Promise<string> {
  const host = await resolveInRoot(ctx.rootfs, imagePath, { followFinal: true });
  if (await isDir(host)) return host;
  const rel = path.relative(ctx.rootfs, host);
  let cur = ctx.rootfs;
  for (const part of rel.split(path.sep).filter(Boolean)) {
    cur = path.join(cur, part);
    try {
      const st = await fs.lstat(cur);
      if (!st.isDirectory()) {
        throw new UserInputError('COPY_DEST_NOT_DIR', `${ctx.instruction} failed: ${posixPath.join('/', path.relative(ctx.rootfs, cur))} is not a directory`);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await fs.mkdir(cur, { mode: 0o755 });
      await fs.chmod(cur, 0o755);
      if (ownCreated) await fs.lchown(cur, ctx.owner.uid, ctx.owner.gid);
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

/** Copies one non-directory entry to `destImagePath`, replacing what is there; `mtime` overrides the source's. */
async function copyEntry(ctx: CopyContext, src: string, destImagePath: string, st: import('node:fs').Stats, mtime?: number): Promise<void> {
  const clean = cleanRelative(destImagePath);
  if (clean === undefined || clean === '') throw new UserInputError('COPY_DEST_INVALID', `${ctx.instruction} failed: invalid destination ${destImagePath}`);
  // The parent is resolved inside the rootfs; the last component is never followed.
  const parent = await resolveInRoot(ctx.rootfs, posixPath.dirname('/' + clean), { followFinal: true });
  const host = path.join(parent, posixPath.basename(clean));
  const existing = await fs.lstat(host).catch(() => undefined);
  if (existing?.isDirectory()) {
    throw new UserInputError('COPY_DEST_IS_DIR', `${ctx.instruction} failed: cannot overwrite directory ${destImagePath} with a file`);
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
  await fs.utimes(host, mtime ?? st.atime, mtime ?? st.mtime);
}

async function replaceNonDir(host: string): Promise<void> {
  const st = await fs.lstat(host).catch(() => undefined);
  if (st && !st.isDirectory()) await fs.rm(host, { force: true });
}

async function isDir(host: string): Promise<boolean> {
  const st = await fs.stat(host).catch(() => undefined);
  return st?.isDirectory() ?? false;
}
