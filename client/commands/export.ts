// `strata export IMAGE [-o FILE]`: the image's filesystem flattened into one tar (docker
// export takes a container; strata has none, so it takes the image a container would run).
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { exportImage } from '../../engine/archive/export.js';
import { tempName } from '../../engine/fsutil/atomic.js';
import type { Store } from '../../engine/store/store.js';
import { UsageError } from '../errors.js';

export async function runExport(store: Store, ref: string, opts: { output?: string }): Promise<void> {
  const image = await store.getImage(ref);
  if (!opts.output) {
    if (process.stdout.isTTY) throw new UsageError('cowardly refusing to save to a terminal. Use the -o flag or redirect');
    await exportImage(store, image, process.stdout);
    return;
  }
  const dest = path.resolve(opts.output);
  const tmp = tempName(path.dirname(dest), 'export');
  try {
    await exportImage(store, image, createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
    await fs.rename(tmp, dest);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}
