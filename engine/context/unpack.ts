// Build contexts arrive as tar blobs; COPY reads them unpacked under contexts/<digest>/.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { digestHex, type Digest } from '../digest.js';
import { extractTar } from '../fsutil/extract.js';
import { exists } from '../fsutil/atomic.js';
import type { Store } from '../store/store.js';

/** Returns the directory holding the unpacked context; unpacks it once. Idempotent. */
export async function ensureContext(store: Store, digest: Digest): Promise<string> {
  const dir = path.join(store.root, 'contexts', digestHex(digest));
  if (await exists(dir)) return dir;
  const staging = await store.makeTempDir('context');
  try {
    const root = path.join(staging, 'root');
    await fs.mkdir(root);
    // Context files keep names like `.wh.x` as they are: a context is not a layer.
    await extractTar(store.openBlob(digest), root, { whiteouts: 'keep', sameOwner: false });
    try {
      await fs.rename(root, dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw err;
    }
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
  return dir;
}
