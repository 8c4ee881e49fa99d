// `strata save -o FILE IMAGE...`: images to a tar that docker load and OCI tools read.
import path from 'node:path';
import { saveImages } from '../../engine/archive/save.js';
import { Store } from '../../engine/store/store.js';
import { formatSize } from '../format.js';
import { normalizeTag } from '../options.js';

export async function runSave(refs: string[], opts: { output: string }): Promise<void> {
  const store = await Store.open();
  const items = [];
  for (const ref of refs) {
    const image = await store.getImage(ref);
    const isTag = !/^(sha256:)?[0-9a-f]{12,64}$/.test(ref);
    items.push({ image, tags: isTag ? [normalizeTag(ref, 'save')] : [] });
  }
  const { size } = await saveImages(store, items, path.resolve(opts.output));
  console.error(`Saved ${refs.join(', ')} to ${opts.output} (${formatSize(size)})`);
}
