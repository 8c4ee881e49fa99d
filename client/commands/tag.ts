// `strata tag SOURCE TARGET`: another name for an image in the store, as docker tag.
import { tagImage } from '../../engine/store/images.js';
import type { Store } from '../../engine/store/store.js';

export async function runTag(store: Store, source: string, target: string): Promise<void> {
  await tagImage(store, source, target);
}
