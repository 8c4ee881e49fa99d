// Other blobs known to hold a layer. A layer is stored once per chain ID, with the blob it first
// came as; an image pulled or loaded later may describe the same layer by another blob (gzip
// where the store has it uncompressed, another compressor's bytes). Its manifest names that
// blob, so a commit's input check (activities/inputShapes.ts) must know it is this layer's:
// the record is written only after the blob was hashed and unpacked to the layer's diff_id.
//   layer-blobs/<diffID hex>/<blob digest hex>.json   { digest, mediaType, size }
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { digestHex, type Digest } from '../digest.js';
import { writeFileAtomic } from '../fsutil/atomic.js';

export interface LayerBlob {
  digest: Digest;
  mediaType: string;
  size: number;
}

function recordPath(root: string, diffId: Digest, blob: Digest): string {
  return path.join(root, 'layer-blobs', digestHex(diffId), `${digestHex(blob)}.json`);
}

export async function noteLayerBlob(root: string, diffId: Digest, blob: LayerBlob): Promise<void> {
  const file = recordPath(root, diffId, blob.digest);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, JSON.stringify({ digest: blob.digest, mediaType: blob.mediaType, size: blob.size }));
}

/** The record of `blob` as a form of the layer with `diffId`, or undefined. */
export async function knownLayerBlob(root: string, diffId: Digest, blob: Digest): Promise<LayerBlob | undefined> {
  try {
    const r = JSON.parse(await fs.readFile(recordPath(root, diffId, blob), 'utf8')) as Partial<LayerBlob>;
    if (r.digest !== blob || typeof r.mediaType !== 'string' || typeof r.size !== 'number') return undefined;
    return r as LayerBlob;
  } catch {
    return undefined;
  }
}
