// Disk usage as docker reports it: a layer's size is the sum of the sizes of the non-directory
// entries in its snapshot, each inode counted once (docker's overlay2 driver measures its
// diff/ directory so). `strata images`, history, df and prune print it, so their SIZE columns
// equal docker's for the same image. Measured once per layer and kept beside its meta.json.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Digest } from '../digest.js';
import { writeFileAtomic } from '../fsutil/atomic.js';
import type { Store } from './store.js';

/** Bytes of the files in `dir`, docker's way: directories and empty files add nothing, hardlinks count once. */
export async function directoryUsage(dir: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    for (const ent of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, ent.name);
      if (ent.isDirectory()) {
        await walk(p);
        continue;
      }
      const st = await fs.lstat(p, { bigint: true });
      if (st.size === 0n) continue;
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
      total += Number(st.size);
    }
  };
  await walk(dir);
  return total;
}

const USAGE_FILE = 'usage.json';

/** The docker-style size of the layer `chain`; measured on first use, then read back. */
export async function layerUsage(store: Store, chain: Digest): Promise<number> {
  const file = path.join(store.layerDir(chain), USAGE_FILE);
  const cached = await fs.readFile(file, 'utf8').then(
    (t) => (JSON.parse(t) as { bytes?: unknown }).bytes,
    () => undefined,
  );
  if (typeof cached === 'number') return cached;
  const bytes = await directoryUsage(store.layerDiffDir(chain));
  // A layer removed meanwhile leaves nowhere to write: the measure is still right.
  await writeFileAtomic(file, JSON.stringify({ bytes })).catch(() => undefined);
  return bytes;
}
