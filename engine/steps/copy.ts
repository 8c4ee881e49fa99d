// COPY from the build context or --from a stage or image: matched sources are written into an
// overlay of the parent image (of nothing, with --link), and the upperdir is committed as the layer. docker's rules for sources and
// destinations (https://docs.docker.com/reference/dockerfile/#copy), noted where they bite.
import { promises as fs, type Stats } from 'node:fs';
import ignore from '@balena/dockerignore';
import path from 'node:path';
import posixPath from 'node:path/posix';
import { UserInputError } from '../errors.js';
import { cleanRelative, resolveInRoot } from '../fsutil/scoped.js';
import type { Digest } from '../digest.js';
import { commitStep, type StepResult } from '../layer/commit.js';
import type { CopyStep } from '../plan/types.js';
import { applySymbolicMode } from '../plan/mode.js';
import { mountOverlay, mountReadOnly } from '../runtime/overlay.js';
import type { Store } from '../store/store.js';
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
}

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
    // --link copies onto an empty base: the layer holds the files and their parent directories
    // only, and depends on nothing below it (BuildKit's semantics); it still stacks on the parent.
    const base = step.link ? [] : await store.chainOf(spec.parentTop);
    const mount = await mountOverlay(store, base, staging);
    try {
      await copyInto(mount.merged, sourceRoot, spec);
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

/** One matched source: its path in the source root and where --parents puts it below dest. */
interface Match {
  rel: string;
  /** Components of `rel` that --parents keeps: those after the `/./` pivot, or all. */
  kept: string[];
}

async function copyInto(rootfs: string, sourceRoot: string, spec: CopySpec): Promise<void> {
  const { step } = spec;
  const fromRootfs = spec.source.kind === 'rootfs';
  const excluded = exclusionOf(step.excludes);
  const matches: Match[] = [];
  let matchedAny = false;
  for (const src of step.sources) {
    const found = await matchSources(sourceRoot, src);
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
      matches.push({ rel, kept: rel.split('/').filter(Boolean).slice(dropped) });
    }
  }
  if (!matchedAny) throw new UserInputError('COPY_SOURCE_NOT_FOUND', `${step.instruction} failed: no source files were specified`);

  // A destination is a directory when written with a trailing `/`, or when it already is one.
  const destHost = await resolveInRoot(rootfs, step.dest, { followFinal: true });
  const destExistsAsDir = await isDir(destHost);
  const destIsDir = step.dest.endsWith('/') || destExistsAsDir || step.parents === true;
  if (matches.length > 1 && !destIsDir) {
    throw new UserInputError('COPY_DEST_NOT_DIR', `${step.instruction} failed: when using ${step.instruction} with more than one source file, the destination must be a directory and end with a /`);
  }

  const ctx: CopyContext = {
    rootfs,
    owner: step.chown ? await resolveOwner(rootfs, step.chown) : undefined,
    keepOwners: fromRootfs,
    chmod: step.chmod,
    excluded: (rel) => excluded(rel),
    createdDirs: [],
  };
  for (const m of matches) {
    // A source that is a symlink is followed, inside the source root (as both docker builders
    // do); symlinks inside a copied directory are copied as links.
    const srcHost = await resolveInRoot(sourceRoot, m.rel, { followFinal: true });
    const st = await fs.lstat(srcHost).catch(() => undefined);
    if (!st) throw new UserInputError('COPY_SOURCE_NOT_FOUND', `${step.instruction} failed: ${m.rel} is a symlink to nothing in the source`);
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
      const target = destIsDir ? posixPath.join(step.dest, posixPath.basename(m.rel)) : step.dest;
      await ensureDir(ctx, posixPath.dirname(target));
      await copyEntry(ctx, srcHost, target, st);
    }
  }
  // Parents' mtimes moved while children were written: restore the source times, deepest first.
  for (const { host, st } of ctx.createdDirs.reverse()) {
    await fs.utimes(host, st.atime, st.mtime);
  }
}

/** `--exclude` patterns as a predicate on source-relative paths (.dockerignore's matching). */
function exclusionOf(patterns: string[] | undefined): (rel: string) => boolean {
  if (!patterns || patterns.length === 0) return () => false;
  // The package is CommonJS with a Babel-style `default` export.
  const ig = ignore.default({ ignorecase: false }).add(patterns);
  return (rel) => rel !== '' && ig.ignores(rel);
}

interface CopyContext {
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
 * root-owned 0755 (as docker does); `like`, when given, gives the last one its mode/times
 * and the --chown owner (docker leaves a created destination root-owned otherwise).
 */
async function ensureDir(ctx: CopyContext, imagePath: string, like?: Stats): Promise<string> {
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
    await fs.chmod(host, modeFor(ctx, like));
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
    const st = await fs.lstat(src);
    const dest = posixPath.join(destImagePath, name);
    if (st.isDirectory()) {
      await makeDirLike(ctx, dest, st);
      await copyTree(ctx, src, dest, childRel);
    } else {
      await copyEntry(ctx, src, dest, st);
    }
  }
}

/** Copies one non-directory entry to `destImagePath`, replacing what is there. */
async function copyEntry(ctx: CopyContext, src: string, destImagePath: string, st: Stats): Promise<void> {
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
    const owner = ownerFor(ctx, st);
    await fs.lchown(host, owner.uid, owner.gid);
    await fs.lutimes(host, st.atime, st.mtime);
    return;
  }
  if (!st.isFile()) {
    // Only a --from stage or image can hold devices, fifos or sockets; never skip one silently.
    throw new UserInputError('COPY_SPECIAL_FILE', `COPY failed: ${destImagePath}: copying devices, fifos and sockets is not supported yet`);
  }
  await fs.copyFile(src, host);
  const owner = ownerFor(ctx, st);
  await fs.chown(host, owner.uid, owner.gid);
  await fs.chmod(host, modeFor(ctx, st));
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
