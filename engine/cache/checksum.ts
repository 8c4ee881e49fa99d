// Content checksums of what a step reads from the build context, for its cache key: per
// matched source (after --exclude; .dockerignore already shaped the context), over paths,
// types, modes, link targets and file contents, never times. Owners are not hashed: a context
// is unpacked without its owners (every file is root's on the worker) and COPY gives its files
// root or --chown, which is in the step. Sources are matched as COPY matches them
// (engine/steps/wildcard.ts, a source symlink followed inside the context) so the checksum
// covers exactly what the copy reads.
import { createHash } from 'node:crypto';
import { closeSync, constants as fsc, createReadStream, lstatSync, openSync, promises as fs, readSync, type Stats } from 'node:fs';
import path from 'node:path';
import type { Digest } from '../digest.js';
import { resolveInRoot } from '../fsutil/scoped.js';
import { classifyAddSource } from '../plan/addSource.js';
import { exclusionOf } from '../steps/exclude.js';
import { matchSources } from '../steps/wildcard.js';

export interface SourcesSpec {
  /** Sources as the step names them (paths or patterns, relative to the context). */
  sources: string[];
  excludes?: string[];
  /** ADD: URL and git sources are keyed elsewhere and skipped here. */
  instruction: 'COPY' | 'ADD';
}

/** sha256 over the sources' records; a source that matches nothing is recorded as missing. */
export async function contextChecksum(contextDir: string, spec: SourcesSpec): Promise<Digest> {
  const h = createHash('sha256');
  const record = (...fields: unknown[]) => h.update(JSON.stringify(fields) + '\n');
  const excluded = exclusionOf(spec.excludes);
  for (const src of spec.sources) {
    record('source', src);
    if (spec.instruction === 'ADD' && classifyAddSource(src)?.kind !== 'local') continue;
    let found: string[];
    try {
      found = await matchSources(contextDir, src);
    } catch (err) {
      // The copy fails on it too (a path out of the context, a bad pattern): key the failure.
      record('error', (err as { code?: string }).code ?? 'unknown');
      continue;
    }
    if (found.length === 0) record('missing');
    for (const rel of found) {
      if (excluded(rel)) continue;
      record('match', rel);
      const host = await resolveInRoot(contextDir, rel, { followFinal: true }).catch(() => undefined);
      const st = host ? await fs.lstat(host).catch(() => undefined) : undefined;
      if (!host || !st) {
        record('dangling');
        continue;
      }
      // --exclude applies below a copied directory relative to it, as copyTree matches it.
      await hashEntry(record, host, st, '', excluded, new Map());
    }
  }
  return `sha256:${h.digest('hex')}` as Digest;
}

async function hashEntry(
  record: (...fields: unknown[]) => void,
  host: string,
  st: Stats,
  rel: string,
  excluded: (rel: string) => boolean,
  inodes: Map<number, string>,
): Promise<void> {
  const mode = st.mode & 0o7777;
  if (st.isDirectory()) {
    record('dir', mode);
    for (const name of (await fs.readdir(host)).sort()) {
      const childRel = rel ? `${rel}/${name}` : name;
      if (excluded(childRel)) continue;
      const child = path.join(host, name);
      const cst = lstatSync(child); // synchronous: see SMALL_FILE
      record('name', name);
      await hashEntry(record, child, cst, childRel, excluded, inodes);
    }
    record('end');
  } else if (st.isSymbolicLink()) {
    record('symlink', await fs.readlink(host));
  } else if (st.isFile()) {
    // Files hardlinked to each other stay so in the layer: which ones is part of the content.
    const first = st.nlink > 1 ? inodes.get(st.ino) : undefined;
    if (first !== undefined) {
      record('hardlink', first, mode);
      return;
    }
    if (st.nlink > 1) inodes.set(st.ino, rel);
    record('file', mode, st.size, st.size <= SMALL_FILE ? smallFileSha256(host) : await fileSha256(host));
  } else {
    record('special', mode, st.mode & 0o170000);
  }
}

/**
 * Files up to this size are hashed with synchronous calls: a read stream's threadpool round
 * trips were most of the time of a context of thousands of small files on a loaded machine.
 */
const SMALL_FILE = 256 * 1024;

function smallFileSha256(file: string): string {
  const h = createHash('sha256');
  const fd = openSync(file, fsc.O_RDONLY);
  try {
    const buf = Buffer.allocUnsafe(64 * 1024);
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

async function fileSha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}
