// `strata import FILE [NAME]`: an image from a rootfs tarball, like docker import.
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { importRootfs } from '../../engine/archive/import.js';
import { openLease } from '../../engine/store/leases.js';
import { Store } from '../../engine/store/store.js';
import { normalizeTag, sourceDateEpoch } from '../options.js';
import { parsePlatform } from './pull.js';

export async function runImport(file: string, name: string | undefined, opts: { change: string[]; platform?: string }): Promise<void> {
  const store = await Store.open();
  const tags = name ? [normalizeTag(name, 'import')] : [];
  const src = file === '-' ? process.stdin : createReadStream(path.resolve(file));
  const platform = parsePlatform(opts.platform);
  // The layer and blobs are stored before the image names them: held from the store's GC meanwhile.
  const lease = await openLease(store.root, `import-${process.pid}`);
  try {
    const { imageId } = await importRootfs(store, src, { tags, changes: opts.change, source: file, sourceDateEpoch: sourceDateEpoch(), platform });
    console.log(imageId);
  } finally {
    await lease.release();
  }
}
