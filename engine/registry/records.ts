// What the store remembers about registries, so pushes do not redo work:
//   registry/compressed/<diffID hex>.<gzip|zstd>.json  the compressed blob made for a layer
//   registry/blobs/<sha256(registry) hex>/<digest hex>  repositories of that registry known
//                                                       to hold the blob (pushed or pulled)
// Both are hints: a record whose blob is gone, or a repository that lost the blob, only
// costs the work the record would have saved (compress again, upload instead of mount).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { digestHex, isDigest, sha256, type Digest } from '../digest.js';
import { writeFileAtomic } from '../fsutil/atomic.js';

export type LayerCompression = 'gzip' | 'zstd';

export interface CompressedLayer {
  digest: Digest;
  size: number;
  mediaType: string;
}

/** Most repositories remembered per blob and registry: newest kept. */
const MAX_REPOSITORIES = 20;

function compressedPath(root: string, diffId: Digest, compression: LayerCompression): string {
  return path.join(root, 'registry', 'compressed', `${digestHex(diffId)}.${compression}.json`);
}

function locationsPath(root: string, registry: string, digest: Digest): string {
  return path.join(root, 'registry', 'blobs', digestHex(sha256(registry)), digestHex(digest));
}

/** The compressed blob recorded for a layer, or undefined. */
export async function readCompressed(root: string, diffId: Digest, compression: LayerCompression): Promise<CompressedLayer | undefined> {
  try {
    const r = JSON.parse(await fs.readFile(compressedPath(root, diffId, compression), 'utf8')) as Partial<CompressedLayer>;
    if (typeof r.digest !== 'string' || !isDigest(r.digest) || typeof r.size !== 'number' || typeof r.mediaType !== 'string') return undefined;
    return r as CompressedLayer;
  } catch {
    return undefined;
  }
}

export async function writeCompressed(root: string, diffId: Digest, compression: LayerCompression, layer: CompressedLayer): Promise<void> {
  const file = compressedPath(root, diffId, compression);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, JSON.stringify(layer));
}

/** Repositories of `registry` known to hold `digest`, most recent first. */
export async function blobLocations(root: string, registry: string, digest: Digest): Promise<string[]> {
  try {
    const text = await fs.readFile(locationsPath(root, registry, digest), 'utf8');
    return text.split('\n').filter((l) => /^[a-z0-9][a-z0-9._/-]*$/.test(l));
  } catch {
    return [];
  }
}

/**
 * Notes that `repository` of `registry` holds `digest`. Two processes noting at once may
 * lose one note: harmless for a hint.
 */
export async function noteBlobLocation(root: string, registry: string, digest: Digest, repository: string): Promise<void> {
  const known = await blobLocations(root, registry, digest);
  if (known[0] === repository) return;
  const next = [repository, ...known.filter((r) => r !== repository)].slice(0, MAX_REPOSITORIES);
  const file = locationsPath(root, registry, digest);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, next.join('\n') + '\n');
}
