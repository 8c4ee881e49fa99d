// The outer tar of an image archive, staged: every regular file is streamed to a numbered
// file in a staging directory (hashed as it is written, never held in memory), and symlinks
// and hardlinks are kept as names only, resolved inside the archive's own namespace. No path
// from the archive ever becomes a path on disk, so `../`, absolute names and links that
// point outside cannot reach anything: they are errors when followed.
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import posixPath from 'node:path/posix';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestStream, type Digest } from '../digest.js';
import { EngineError, UserInputError } from '../errors.js';
import { readTar } from '../tar/tarformat.js';

export interface StagedFile {
  /** The staged copy on disk. */
  file: string;
  /** sha256 of its bytes, as they were in the archive. */
  digest: Digest;
  size: number;
}

export interface StageLimits {
  /** Entries in the archive. */
  maxEntries: number;
}

const DEFAULT_LIMITS: StageLimits = { maxEntries: 200_000 };
/** Links followed to reach one file. */
const MAX_LINK_HOPS = 16;

export class StagedArchive {
  private readonly files = new Map<string, StagedFile>();
  private readonly links = new Map<string, { kind: 'symlink' | 'hardlink'; target: string }>();

  /** Whether `name` (an archive path) is an entry of the archive, file or link. */
  has(name: string): boolean {
    const n = archivePath(name);
    return n !== undefined && (this.files.has(n) || this.links.has(n));
  }

  /**
   * The file `name` (as manifest.json or index.json names it) leads to, following links
   * inside the archive; undefined when absent. A name or link that leaves the archive's
   * root, or a loop, is an error.
   */
  resolve(name: string): StagedFile | undefined {
    let cur = archivePath(name);
    if (cur === undefined) throw new UserInputError('ARCHIVE_INVALID', `load: ${JSON.stringify(name)} leaves the archive`);
    for (let hop = 0; hop <= MAX_LINK_HOPS; hop++) {
      const file = this.files.get(cur);
      if (file) return file;
      const link = this.links.get(cur);
      if (!link) return undefined;
      const relative = link.kind === 'symlink' && !link.target.startsWith('/');
      const next = archivePath(relative ? posixPath.join(posixPath.dirname(cur), link.target) : link.target);
      if (next === undefined) throw new UserInputError('ARCHIVE_INVALID', `load: the link ${JSON.stringify(cur)} points outside the archive`);
      cur = next;
    }
    throw new UserInputError('ARCHIVE_INVALID', `load: too many links to follow from ${JSON.stringify(name)}`);
  }

  /** Reads `name` whole, refusing more than `limit` bytes (manifests and configs are small). */
  async readSmall(name: string, limit: number): Promise<Buffer | undefined> {
    const f = this.resolve(name);
    if (!f) return undefined;
    if (f.size > limit) throw new UserInputError('ARCHIVE_INVALID', `load: ${name} is ${f.size} bytes, more than the ${limit} allowed`);
    return fs.readFile(f.file);
  }

  add(name: string, file: StagedFile): void {
    this.files.set(name, file);
  }

  addLink(name: string, kind: 'symlink' | 'hardlink', target: string): void {
    this.links.set(name, { kind, target });
  }
}

/**
 * A clean archive path: no leading `/` or `./`, no `.` or empty parts, `..` folded in.
 * Undefined when `..` climbs above the root.
 */
export function archivePath(name: string): string | undefined {
  const parts: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') {
      if (parts.length === 0) return undefined;
      parts.pop();
    } else parts.push(p);
  }
  return parts.length === 0 ? undefined : parts.join('/');
}

/**
 * Reads the tar from `src` into `dir` (an empty staging directory the caller removes).
 * Entries named twice, names with `..` and more entries than the limit are errors; devices,
 * fifos and directories are skipped (an image archive has no use for them).
 */
export async function stageArchive(src: Readable, dir: string, limits: StageLimits = DEFAULT_LIMITS): Promise<StagedArchive> {
  const staged = new StagedArchive();
  let n = 0;
  try {
    for await (const entry of readTar(src)) {
      if (++n > limits.maxEntries) throw new UserInputError('ARCHIVE_INVALID', `load: the archive has more than ${limits.maxEntries} entries`);
      const h = entry.header;
      if (h.type === 'directory' || h.type === null) continue;
      if (h.name.split('/').includes('..')) throw new UserInputError('ARCHIVE_INVALID', `load: the archive entry ${JSON.stringify(h.name)} climbs out with ..`);
      const name = archivePath(h.name);
      if (name === undefined) continue;
      if (staged.has(name)) throw new UserInputError('ARCHIVE_INVALID', `load: the archive holds ${JSON.stringify(name)} twice`);
      if (h.type === 'symlink') staged.addLink(name, 'symlink', h.linkname);
      else if (h.type === 'link') staged.addLink(name, 'hardlink', h.linkname);
      else if (h.type === 'file' || h.type === 'contiguous-file') {
        const file = path.join(dir, `entry-${n}`);
        const hasher = new DigestStream();
        await pipeline(Readable.from(entry.body), hasher, createWriteStream(file, { flags: 'wx', mode: 0o600 }));
        staged.add(name, { file, digest: hasher.digest(), size: hasher.size });
      }
    }
  } catch (err) {
    if (err instanceof EngineError && err.code === 'TAR_INVALID') {
      throw new UserInputError('ARCHIVE_INVALID', `load: the archive is damaged or truncated: ${err.message}`, { cause: err });
    }
    throw err;
  }
  return staged;
}
