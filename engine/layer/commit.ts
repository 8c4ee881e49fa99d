// Commit: a step's upperdir becomes a layer. The tar is streamed into sha256 only (diff_id);
// the directory itself is renamed into the store as the snapshot, never copied.
import type { Digest } from '../digest.js';
import { MEDIA_TYPE_LAYER, type LayerRef } from '../image/types.js';
import type { Store } from '../store/store.js';
import { hashLayerTar } from './tar.js';

/** Commits `upper` on top of `parent` (a chainID, or undefined for the first layer). */
export async function commitSnapshot(
  store: Store,
  upper: string,
  parent: Digest | undefined,
  sourceDateEpoch?: number,
): Promise<LayerRef> {
  const { diffId, size } = await hashLayerTar(upper, { sourceDateEpoch });
  const chainId = await store.commitLayer(upper, { diffId, parent, size, sourceDateEpoch });
  const meta = await store.readLayerMeta(chainId);
  return { diffId, chainId, size: meta.size, digest: diffId, mediaType: MEDIA_TYPE_LAYER, blobSize: meta.size };
}
