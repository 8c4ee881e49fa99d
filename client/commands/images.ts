// `strata images`: the tagged images in the store.
import { Store } from '../../engine/store/store.js';
import { formatSize, printTable } from '../format.js';

export async function runImages(): Promise<void> {
  const store = await Store.open();
  const rows = [['REPOSITORY', 'TAG', 'IMAGE ID', 'SIZE']];
  for (const t of await store.listTags()) {
    const img = await store.loadImage(t.manifest);
    const [repo, tag] = [t.name.slice(0, t.name.lastIndexOf(':')), t.name.slice(t.name.lastIndexOf(':') + 1)];
    rows.push([repo, tag, img.configDigest.slice(7, 19), formatSize(img.layers.reduce((n, l) => n + l.size, 0))]);
  }
  printTable(rows);
}
