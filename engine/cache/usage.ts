// The build cache as `strata system df` shows it: everything the store keeps for builds beside
// what images hold (cache entries' layers, layers nothing holds, contexts, loose blobs, logs,
// RUN cache mounts, step images' time records),
// with what is in use by a running build and what `strata builder prune -a` could reclaim.
import type { Digest } from '../digest.js';
import { chainDown } from '../store/refs.js';
import { imageBytes, storeBytes } from './gc.js';
import { storedWhileOpen, type Inventory } from './inventory.js';

export interface UsageRow {
  /** Cache entries and unpacked contexts. */
  total: number;
  /** Of those, in use by a running build (held by a lease). */
  active: number;
  bytes: number;
  reclaimable: number;
}

export function buildCacheUsage(inv: Inventory): UsageRow {
  const leased = (c: Digest) => inv.leases.layers.has(c) || storedWhileOpen(inv, inv.layers.get(c)?.storedAt ?? 0);
  const imageLayers = new Set<Digest>();
  for (const c of inv.images.layers.keys()) for (const l of chainDown(inv.layers, c)) imageLayers.add(l);
  const bytes = storeBytes(inv) - imageBytes(inv);
  let held = 0;
  let active = 0;
  for (const l of inv.layers.values()) if (!imageLayers.has(l.chain) && leased(l.chain)) held += l.size;
  for (const e of inv.entries) if (e.layer && leased(e.layer.chainId)) active++;
  for (const [d, c] of inv.contexts) {
    if (inv.leases.blobs.has(d) || inv.pins.has(d)) {
      held += c.bytes;
      active++;
    }
  }
  for (const [d, b] of inv.blobs) if (!inv.images.blobs.has(d) && (inv.leases.blobs.has(d) || inv.pins.has(d))) held += b.bytes;
  for (const [build, l] of inv.logs) if (inv.leases.builds.has(build)) held += l.bytes;
  // RUN cache mounts a running build used since it began.
  for (const m of inv.mounts.values()) {
    if (storedWhileOpen(inv, m.usedAt)) {
      held += m.bytes;
      active++;
    }
  }
  return { total: inv.entries.length + inv.contexts.size + inv.mounts.size, active, bytes, reclaimable: Math.max(0, bytes - held) };
}
