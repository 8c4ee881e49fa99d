// What `strata system df` shows of the store: images and the build cache (everything else the
// store keeps for builds: cache entries' layers, layers nothing holds, contexts, loose blobs,
// logs), each with its size and what a prune could reclaim.
import type { Digest } from '../digest.js';
import { chainDown } from '../store/refs.js';
import { imageBytes, storeBytes } from './gc.js';
import { storedWhileOpen, type Inventory } from './inventory.js';

export interface UsageRow {
  total: number;
  /** In use by a running build (held by a lease). */
  active: number;
  bytes: number;
  reclaimable: number;
}

export function storeUsage(inv: Inventory): { images: UsageRow; buildCache: UsageRow } {
  const leased = (c: Digest) => inv.leases.layers.has(c) || storedWhileOpen(inv, inv.layers.get(c)?.storedAt ?? 0);
  // An image is active while a build uses one of its layers (as its base).
  const activeImages = new Set<Digest>();
  for (const [c, manifests] of inv.images.layers) if (leased(c)) for (const m of manifests) activeImages.add(m);
  const imageLayers = new Set<Digest>();
  const activeLayers = new Set<Digest>();
  for (const [c, manifests] of inv.images.layers) {
    for (const l of chainDown(inv.layers, c)) {
      imageLayers.add(l);
      if (manifests.some((m) => activeImages.has(m))) activeLayers.add(l);
    }
  }
  let imageReclaimable = 0;
  for (const l of imageLayers) if (!activeLayers.has(l) && !leased(l)) imageReclaimable += inv.layers.get(l)?.size ?? 0;
  const imagesTotal = imageBytes(inv);

  const cacheTotal = storeBytes(inv) - imagesTotal;
  let cacheHeld = 0;
  let cacheActive = 0;
  for (const l of inv.layers.values()) if (!imageLayers.has(l.chain) && leased(l.chain)) cacheHeld += l.size;
  for (const e of inv.entries) if (e.layer && leased(e.layer.chainId)) cacheActive++;
  for (const [d, c] of inv.contexts) {
    if (inv.leases.blobs.has(d) || inv.pins.has(d)) {
      cacheHeld += c.bytes;
      cacheActive++;
    }
  }
  for (const [d, b] of inv.blobs) if (!inv.images.blobs.has(d) && (inv.leases.blobs.has(d) || inv.pins.has(d))) cacheHeld += b.bytes;
  for (const [build, l] of inv.logs) if (inv.leases.builds.has(build)) cacheHeld += l.bytes;
  return {
    images: { total: inv.images.manifests.length, active: activeImages.size, bytes: imagesTotal, reclaimable: imageReclaimable },
    buildCache: { total: inv.entries.length + inv.contexts.size, active: cacheActive, bytes: cacheTotal, reclaimable: Math.max(0, cacheTotal - cacheHeld) },
  };
}
