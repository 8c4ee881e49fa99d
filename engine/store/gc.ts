// Removing what removed images leave unreferenced: their layers (unless another image's chain
// holds them, or an overlay mount of a running step uses them), then their manifest, config
// and layer blobs (unless a remaining image's manifest or layer names them).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { asDigest, type Digest } from '../digest.js';
import type { ImageManifest } from '../image/types.js';
import type { ImageRecord } from './images.js';
import type { Store } from './store.js';
import { layerUsage } from './usage.js';

export interface CollectedImage {
  image: ImageRecord;
  /** chainIDs removed with it, top layer first (docker's `Deleted:` rows after the image's). */
  layers: Digest[];
}

export interface CollectResult {
  images: CollectedImage[];
  /** docker-style bytes of the removed layers (what `Total reclaimed space` counts). */
  reclaimed: number;
}

/**
 * Removes the layers and blobs of `removed` (images already taken out of index.json) that
 * nothing in `remaining` refers to. Images are handled in order, so a layer two removed
 * images share is reported with the last of them, as docker's release of references does.
 */
export async function collectRemoved(store: Store, removed: ImageRecord[], remaining: ImageRecord[]): Promise<CollectResult> {
  const mounted = await mountedShortLinks(store);
  const held = new Map<Digest, number>();
  const hold = (r: ImageRecord, n: number) => {
    for (const c of r.chain) held.set(c, (held.get(c) ?? 0) + n);
  };
  for (const r of [...remaining, ...removed]) hold(r, 1);

  const result: CollectResult = { images: [], reclaimed: 0 };
  const goneLayers = new Set<Digest>();
  for (const image of removed) {
    hold(image, -1);
    const layers: Digest[] = [];
    for (const chain of [...image.chain].reverse()) {
      if ((held.get(chain) ?? 0) > 0 || goneLayers.has(chain)) continue;
      // A layer a running step has mounted stays; a later rmi or prune takes it.
      if (mounted.has(path.basename(store.shortLink(chain)))) continue;
      if (!(await store.hasLayer(chain))) continue;
      result.reclaimed += await layerUsage(store, chain).catch(() => 0);
      await store.removeLayer(chain);
      goneLayers.add(chain);
      layers.push(chain);
    }
    result.images.push({ image, layers });
  }
  await removeBlobs(store, removed, remaining, goneLayers);
  return result;
}

async function removeBlobs(store: Store, removed: ImageRecord[], remaining: ImageRecord[], goneLayers: Set<Digest>): Promise<void> {
  const keep = new Set<string>();
  for (const r of remaining) {
    keep.add(r.id);
    for (const m of r.manifests) {
      keep.add(m);
      const manifest = await store.readJsonBlob<ImageManifest>(m).catch(() => undefined);
      for (const l of manifest?.layers ?? []) keep.add(l.digest);
    }
    // A layer kept (shared, or mounted) keeps the blob it was unpacked from.
    for (const c of r.chain) {
      const blob = await store.readLayerMeta(c).then(
        (m) => m.blob?.digest,
        () => undefined,
      );
      if (blob) keep.add(blob);
    }
  }
  const drop = new Set<Digest>();
  for (const r of removed) {
    drop.add(r.id);
    for (const m of r.manifests) {
      drop.add(m);
      const manifest = await store.readJsonBlob<ImageManifest>(m).catch(() => undefined);
      for (const l of manifest?.layers ?? []) {
        // Only blobs of layers that went: a layer still stored may be unpacked from it.
        const chainIndex = manifest!.layers.indexOf(l);
        const chain = r.chain[chainIndex];
        if (chain && goneLayers.has(chain)) drop.add(asDigest(l.digest));
      }
    }
  }
  for (const d of drop) if (!keep.has(d)) await store.removeBlob(d);
}

/** Short link names (l/<id>) that overlay mounts under the store use as lowerdirs. */
export async function mountedShortLinks(store: Store): Promise<Set<string>> {
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const [fstype, , options = ''] = line.slice(sep + 3).split(' ');
    if (fstype !== 'overlay') continue;
    const mountPoint = unescape(line.slice(0, sep).split(' ')[4] ?? '');
    if (!mountPoint.startsWith(store.root + path.sep)) continue;
    const lower = /(?:^|,)lowerdir=([^,]*)/.exec(options)?.[1] ?? '';
    for (const dir of lower.split(':')) {
      const m = /(?:^|\/)l\/([0-9a-f]+)$/.exec(unescape(dir));
      if (m) out.add(m[1]!);
    }
  }
  return out;
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}
