// COPY and ADD, from the build context or --from a stage or image: matched sources are written
// into an overlay of the parent image (of nothing, with --link), and the upperdir is committed
// as the layer. docker's rules for sources and destinations
// (https://docs.docker.com/reference/dockerfile/#copy), noted where they bite; what ADD does
// beyond COPY (archives, URLs, git) is in add.ts.
import { chmodSync, chownSync, copyFileSync, lstatSync, promises as fs, utimesSync, type Stats } from 'node:fs';
import path from 'node:path';
import posixPath from 'node:path/posix';
import { UserInputError } from '../errors.js';
import { classifyAddSource, downloadName } from '../plan/addSource.js';
import { cleanRelative, resolveInRoot } from '../fsutil/scoped.js';
import type { Digest } from '../digest.js';
import { commitStep, type StepResult } from '../layer/commit.js';
import type { CopyStep } from '../plan/types.js';
import { applySymbolicMode } from '../plan/mode.js';
import { mountOverlay, mountReadOnly } from '../runtime/overlay.js';
import { type HostNetworkGrant, type NetworkMode } from '../runtime/network.js';
import type { Store } from '../store/store.js';
import { cloneGit, downloadUrl, extractArchive, isTarArchive } from './add.js';
import { exclusionOf } from './exclude.js';
import { resolveOwner, type Owner } from './users.js';
import { matchSources } from './wildcard.js';

export interface CopySpec {
  /** chainID of the parent's top layer; undefined for an empty parent (scratch). */
  parentTop?: Digest;
  step: CopyStep;
  /**
   * Where sources are read: the unpacked build context, or the rootfs whose top layer is
   * `top` (COPY --from a stage or an image; undefined top: an empty one), mounted read-only.
   */
  source: { kind: 'context'; dir: string } | { kind: 'rootfs'; top?: Digest };
  sourceDateEpoch?: number;
  /** ADD may clone file:// git repositories, i.e. read the worker's own disk. */
  allowFileGit?: boolean;
  /** The build's network: under `none` ADD fetches nothing. Absent: `default`. */
  network?: NetworkMode;
  /** Whether ADD may reach this host's own addresses (the network.host entitlement). */
  hostNetwork?: HostNetworkGrant;
  /** Counts the files and bytes copied so far; the caller may read it while the copy runs (heartbeats). */
  progress?: { files: number; bytes: number };
}

/** One thing to write, in the order of the sources. */
type CopyItem =
  /** A match in the source root, and the components of it that --parents keeps. */
  | { kind: 'source'; rel: string; kept: string[] }
  /** A heredoc's file, written in the staging area. */
  | { kind: 'inline'; host: string }
  | { kind: 'download'; file: string; name: string; mtime?: number }
  /** A git checkout: its contents go into the destination directory. */
  | { kind: 'tree'; dir: string };

/** Runs one COPY step and commits its layer. Idempotent: the same inputs give the same layer. */
export async function executeCopy(store: Store, spec: CopySpec): Promise<StepResult> {
  const { step } = spec;
  const staging = await store.makeTempDir('copy');
  let readOnly: Awaited<ReturnType<typeof mountReadOnly>> | undefined;
  try {
    let sourceRoot: string;
    if (spec.source.kind === 'context') sourceRoot = spec.source.dir;
    else {
      readOnly = await mountReadOnly(store, await store.chainOf(spec.source.top), staging);
      sourceRoot = readOnly.root;
    }
    // Downloads and clones finish before the mount: a failed one leaves nothing behind.
    const items = await gatherSources(spec, sourceRoot, path.join(staging, 'fetched'), await writeInlineFiles(staging, step));
    // --link copies onto an empty base: the layer holds the files and their parent directories
    // only, and depends on nothing below it (BuildKit's semantics); it still stacks on the parent.
    const base = step.link ? [] : await store.chainOf(spec.parentTop);
    const mount = await mountOverlay(store, base, staging);
    try {
      await copyInto(mount.merged, sourceRoot, spec, items);
    } finally {
      await mount.unmount();
    }
    return await commitStep(store, mount.upper, spec.parentTop, step.history, spec.sourceDateEpoch);
  } finally {
    // Never remove the staging dir while the read-only mount of stored layers is in it.
    await readOnly?.unmount();
    await fs.rm(staging, { recursive: true, force: true });
  }
}

const ROOT: Owner = { uid: 0, gid: 0 };

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
 * Matches sources in the source root and, for ADD, downloads URLs and clones repositories
 * into `fetchDir`; heredoc files (in `inlineDir`) come last, as BuildKit copies them.
 */
async function gatherSources(spec: CopySpec, sourceRoot: string, fetchDir: string, inlineDir: string | undefined): Promise<CopyItem[]> {
  const { step } = spec;
  const fromRootfs = spec.source.kind === 'rootfs';
  const excluded = exclusionOf(step.excludes);
  const items: CopyItem[] = [];
  let matchedAny = false;
  for (const src of step.sources) {
    const source = step.instruction === 'ADD' && !fromRootfs ? classifyAddSource(src) : { kind: 'local' as const, path: src };
    if (!source) throw new UserInputError('ADD_SOURCE_INVALID', `ADD failed: unsupported source URL ${src}`);
    if ((source.kind === 'http' || (source.kind === 'git' && !source.local)) && spec.network === 'none') {
      throw new UserInputError('ADD_NETWORK_NONE', `ADD failed: ${src}: the build's network is none (strata build --network none), so nothing is fetched`);
    }
    if (source.kind === 'http') {
      await fs.mkdir(fetchDir, { recursive: true });
      const file = path.join(fetchDir, `download-${items.length}`);
      const got = await downloadUrl(source.url, file, step.checksum, { allowHost: spec.hostNetwork === 'granted' });
      items.push({ kind: 'download', file, name: downloadName(source.url), mtime: got.mtime });
      matchedAny = true;
      continue;
    }
    if (source.kind === 'git') {
      if (source.local && !spec.allowFileGit) {
        throw new UserInputError('ADD_GIT_FILE_DENIED', `ADD failed: ${src} reads the worker's disk; the worker allows file:// git sources only with STRATA_ALLOW_FILE_GIT=1`);
      }
      await fs.mkdir(fetchDir, { recursive: true });
      items.push({
        kind: 'tree',
        dir: await cloneGit(source, path.join(fetchDir, `git-${items.length}`), step.keepGitDir ?? false, { allowHost: spec.hostNetwork === 'granted' }),
      });
      matchedAny = true;
      continue;
    }
    const found = await matchSources(sourceRoot, source.path);
    if (found.length === 0) {
      if (/[*?[]/.test(src)) continue; // docker: a wildcard may match nothing, as long as something is copied
      const where = fromRootfs ? 'in the --from stage or image' : 'in build context or excluded by .dockerignore';
      throw new UserInputError('COPY_SOURCE_NOT_FOUND', `${step.instruction} failed: file not found ${where}: ${src}`);
    }
    matchedAny = true;
    const pivot = src.indexOf('/./');
    const dropped = pivot < 0 ? 0 : (cleanRelative(src.slice(0, pivot)) ?? '').split('/').filter(Boolean).length;
    for (const rel of found) {
      if (excluded(rel)) continue;
      items.push({ kind: 'source', rel, kept: rel.split('/').filter(Boolean).slice(dropped) });
    }
  }
  for (const f of step.inline ?? []) items.push({ kind: 'inline', host: path.join(inlineDir!, f.name) });
  if (!matchedAny && items.length === 0) throw new UserInputError('COPY_SOURCE_NOT_FOUND', `${step.instruction} failed: no source files were specified`);
  return items;
}

async function copyInto(rootfs: string, sourceRoot: string, spec: CopySpec, items: CopyItem[]): Promise<void> {
  const { step } = spec;
  const fromRootfs = spec.source.kind === 'rootfs';
  const excluded = exclusionOf(step.excludes);

  // A destination is a directory when written with a trailing `/`, or when it already is one.
  const destHost = await resolveInRoot(rootfs, step.dest, { followFinal: true });
  const destExistsAsDir = await isDir(destHost);
  const destIsDir = step.dest.endsWith('/') || destExistsAsDir || step.parents === true;
  if (items.length > 1 && !destIsDir) {
    throw new UserInputError(
      'COPY_DEST_NOT_DIR',
      `${step.instruction} failed: when using ${step.instruction} with more than one source file, the destination must be a directory and end with a /`,
    );
  }

  // --chown owns the directories made for a copied file; with --link those are only the
  // layer's placeholders for directories the parent has (BuildKit makes them root's).
  const ownParents = !step.link;
  const ctx: CopyContext = {
    instruction: step.instruction,
    rootfs,
    owner: step.chown ? await resolveOwner(rootfs, step.chown) : undefined,
    keepOwners: fromRootfs,
    chmod: step.chmod,
    excluded: (rel) => excluded(rel),
    createdDirs: [],
    links: new Map(),
    progress: spec.progress ?? { files: 0, bytes: 0 },
  };
  for (const m of items) {
    // Files hardlinked to each other inside one source stay linked (the classic builder tars
    // each source and untars it); links between separate sources are not kept, as there.
    ctx.links = new Map();
    if (m.kind === 'download') {
      const target = destIsDir ? posixPath.join(step.dest, m.name) : step.dest;
      await ensureDir(ctx, posixPath.dirname(target), undefined, ownParents);
      // docker gives a downloaded file mode 0600 and the server's Last-Modified time.
      const st = await fs.stat(m.file);
      await copyEntry({ ...ctx, chmod: ctx.chmod ?? 0o600 }, m.file, target, st, m.mtime ?? st.mtimeMs / 1000);
      continue;
    }
    if (m.kind === 'tree') {
      await fs.chmod(m.dir, 0o755);
      await ensureDir(ctx, step.dest, await fs.lstat(m.dir));
      await copyTree(ctx, m.dir, step.dest, '');
      continue;
    }
    if (m.kind === 'inline') {
      const target = destIsDir ? posixPath.join(step.dest, path.basename(m.host)) : step.dest;
      await ensureDir(ctx, posixPath.dirname(target), undefined, ownParents);
      await copyEntry(ctx, m.host, target, await fs.lstat(m.host));
      continue;
    }
    // A source that is a symlink is followed, inside the source root (as both docker builders
    // do); symlinks inside a copied directory are copied as links.
    const srcHost = await resolveInRoot(sourceRoot, m.rel, { followFinal: true });
    const st = await fs.lstat(srcHost).catch(() => undefined);
    if (!st) throw new UserInputError('COPY_SOURCE_NOT_FOUND', `${step.instruction} failed: ${m.rel} is a symlink to nothing in the source`);
    if (step.instruction === 'ADD' && !fromRootfs && st.isFile() && (await isTarArchive(srcHost))) {
      // A local archive is extracted into the destination, a directory whatever its spelling.
      await extractArchive(srcHost, await ensureDir(ctx, step.dest));
      continue;
    }
    if (step.parents) {
      const dirs = st.isDirectory() ? m.kept : m.kept.slice(0, -1);
      await ensureDir(ctx, step.dest);
      const skipped = m.rel.split('/').filter(Boolean).length - m.kept.length;
      const relParts = m.rel.split('/').filter(Boolean);
      for (let i = 1; i <= dirs.length; i++) {
        const dirSt = await fs.stat(await resolveInRoot(sourceRoot, relParts.slice(0, skipped + i).join('/'), { followFinal: true }));
        await makeDirLike(ctx, posixPath.join(step.dest, ...dirs.slice(0, i)), dirSt);
      }
      const target = posixPath.join(step.dest, ...m.kept);
      if (st.isDirectory()) await copyTree(ctx, srcHost, target, '');
      else await copyEntry(ctx, srcHost, target, st);
    } else if (st.isDirectory()) {
      // A directory copies its contents, not itself.
      await ensureDir(ctx, step.dest, st);
      await copyTree(ctx, srcHost, step.dest, '');
    } else {
      const target = destIsDir ? posixPath.join(step.dest, posixPath.basename(m.rel)) : await throughSymlink(rootfs, step.dest);
      await ensureDir(ctx, posixPath.dirname(target), undefined, ownParents);
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
  /** `--chown`, resolved; undefined: root, or the source's owners when `keepOwners`. */
  owner?: Owner;
  /** COPY --from keeps the owners the files have in their stage or image (docker does). */
  keepOwners: boolean;
  chmod?: number | string;
  /** True for a path (relative to the copied directory) that --exclude leaves out. */
  excluded(rel: string): boolean;
  /** Directories whose times are restored after all writes. */
  createdDirs: { host: string; st: Stats }[];
  /** Source dev:ino of a multiply-linked file → where its first copy went, for this source. */
  links: Map<string, string>;
  progress: { files: number; bytes: number };
}

function ownerFor(ctx: CopyContext, st: Stats): Owner {
  return ctx.owner ?? (ctx.keepOwners ? { uid: st.uid, gid: st.gid } : ROOT);
}

function modeFor(ctx: CopyContext, st: Stats): number {
  if (typeof ctx.chmod === 'number') return ctx.chmod;
  if (typeof ctx.chmod === 'string') return applySymbolicMode(ctx.chmod, st.mode, st.isDirectory());
  return st.mode & 0o7777;
}

/**
 * Makes sure the directory `imagePath` exists in the rootfs: missing parents are created
 * root-owned 0755 (as docker does). `like`, the source directory whose contents go there,
 * gives a created destination its times; its mode is 0755 (or a numeric --chmod), never the
 * source directory's, and its owner --chown's or root (both builders).
 * `ownCreated`: the new directories get --chown's owner, as docker's builder does for the
 * parents of a file it copies (not for a directory's or an archive's).
 */
async function ensureDir(ctx: CopyContext, imagePath: string, like?: Stats, ownCreated = false): Promise<string> {
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
      if (ownCreated && ctx.owner) await fs.lchown(cur, ctx.owner.uid, ctx.owner.gid);
    }
  }
  if (like) {
    await fs.chmod(host, typeof ctx.chmod === 'number' ? ctx.chmod : 0o755);
    const owner = ctx.owner ?? ROOT;
    await fs.lchown(host, owner.uid, owner.gid);
    ctx.createdDirs.push({ host, st: like });
  }
  return host;
}

/** The directory `imagePath` with the metadata of the source directory `st`, made when missing. */
async function makeDirLike(ctx: CopyContext, imagePath: string, st: Stats): Promise<void> {
  // An existing directory, or a symlink to one (usrmerge's /lib), receives the contents.
  let host = await resolveInRoot(ctx.rootfs, imagePath, { followFinal: true });
  if (!(await isDir(host))) {
    host = await resolveInRoot(ctx.rootfs, imagePath);
    await replaceNonDir(host);
  }
  await fs.mkdir(host, { recursive: true });
  await fs.chmod(host, modeFor(ctx, st));
  const owner = ownerFor(ctx, st);
  await fs.lchown(host, owner.uid, owner.gid);
  ctx.createdDirs.push({ host, st });
}

/** Copies the contents of `srcDir` into the image directory `destImagePath`; `rel` is srcDir below the copied source. */
async function copyTree(ctx: CopyContext, srcDir: string, destImagePath: string, rel: string): Promise<void> {
  const names = (await fs.readdir(srcDir)).sort();
  for (const name of names) {
    const childRel = rel ? `${rel}/${name}` : name;
    if (ctx.excluded(childRel)) continue;
    const src = path.join(srcDir, name);
    const st = lstatSync(src);
    const dest = posixPath.join(destImagePath, name);
    if (st.isDirectory()) {
      await makeDirLike(ctx, dest, st);
      await copyTree(ctx, src, dest, childRel);
    } else {
      await copyEntry(ctx, src, dest, st);
    }
  }
}

/** Copies one non-directory entry to `destImagePath`, replacing what is there; `mtime` overrides the source's. */
async function copyEntry(ctx: CopyContext, src: string, destImagePath: string, st: Stats, mtime?: number): Promise<void> {
  const clean = cleanRelative(destImagePath);
  if (clean === undefined || clean === '') throw new UserInputError('COPY_DEST_INVALID', `${ctx.instruction} failed: invalid destination ${destImagePath}`);
  // The parent is resolved inside the rootfs; the last component is never followed.
  const parent = await resolveInRoot(ctx.rootfs, posixPath.dirname('/' + clean), { followFinal: true });
  const host = path.join(parent, posixPath.basename(clean));
  const existing = lstatSync(host, { throwIfNoEntry: false });
  if (existing?.isDirectory()) {
    throw new UserInputError('COPY_DEST_IS_DIR', `${ctx.instruction} failed: cannot overwrite directory ${destImagePath} with a file`);
  }
  if (existing) await fs.rm(host, { force: true });
  if (st.isSymbolicLink()) {
    await fs.symlink(await fs.readlink(src), host);
    const owner = ownerFor(ctx, st);
    await fs.lchown(host, owner.uid, owner.gid);
    await fs.lutimes(host, st.atime, st.mtime);
    return;
  }
  if (!st.isFile()) {
    // Only a --from stage or image can hold devices, fifos or sockets; never skip one silently.
    throw new UserInputError('COPY_SPECIAL_FILE', `COPY failed: ${destImagePath}: copying devices, fifos and sockets is not supported yet`);
  }
  const key = st.nlink > 1 ? `${st.dev}:${st.ino}` : undefined;
  const first = key === undefined ? undefined : ctx.links.get(key);
  if (first !== undefined && (await fs.lstat(first).catch(() => undefined))?.isFile()) {
    await fs.link(first, host);
    return;
  }
  // A small file is copied, and every file's metadata set, with synchronous calls: per file
  // they are the copy's whole cost, and an async call waits for a threadpool thread (copying
  // a context of 5,000 files of 30 KB took 10 s under load; docs/benchmarks.md).
  if (st.size <= SYNC_COPY_MAX) copyFileSync(src, host);
  else await fs.copyFile(src, host);
  ctx.progress.files++;
  ctx.progress.bytes += st.size;
  if (key !== undefined) ctx.links.set(key, host);
  const owner = ownerFor(ctx, st);
  chownSync(host, owner.uid, owner.gid);
  chmodSync(host, modeFor(ctx, st));
  utimesSync(host, mtime ?? st.atime, mtime ?? st.mtime);
}

/** Files up to this size are copied by a synchronous call (see copyEntry). */
const SYNC_COPY_MAX = 256 * 1024;

/**
 * The image path a file destination names: a symlink there is followed (inside the rootfs),
 * so the file replaces the link's target and the link stays, as both docker builders do.
 */
async function throughSymlink(rootfs: string, imagePath: string): Promise<string> {
  const host = await resolveInRoot(rootfs, imagePath, { followFinal: true });
  return posixPath.join('/', path.relative(rootfs, host).split(path.sep).join('/'));
}

async function replaceNonDir(host: string): Promise<void> {
  const st = await fs.lstat(host).catch(() => undefined);
  if (st && !st.isDirectory()) await fs.rm(host, { force: true });
}

async function isDir(host: string): Promise<boolean> {
  const st = await fs.stat(host).catch(() => undefined);
  return st?.isDirectory() ?? false;
}
