// The store's own ID: random, made once and kept in the store (`store-id`), so every client
// and worker sharing the store (one machine, or a docker-compose volume mounted anywhere)
// names it alike, and two stores never do. Builds carry it (StrataStore) for `builds ls`.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { tempEntryName } from '../fsutil/atomic.js';
import type { Store } from './store.js';

const ID = /^[0-9a-f]{16}$/;

/** The store's ID (16 hex digits), made on first use; concurrent first uses agree. */
export async function storeId(store: Pick<Store, 'root'>): Promise<string> {
  const file = path.join(store.root, 'store-id');
  const read = async () => (await fs.readFile(file, 'utf8').catch(() => '')).trim();
  const found = await read();
  if (ID.test(found)) return found;
  // Written whole under a temp name, then linked into place: a reader never sees a part,
  // and the first link wins a race.
  const tmp = path.join(store.root, 'tmp', tempEntryName('store-id'));
  await fs.writeFile(tmp, `${randomBytes(8).toString('hex')}\n`, { flag: 'wx' });
  try {
    await fs.link(tmp, file).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  } finally {
    await fs.rm(tmp, { force: true });
  }
  const id = await read();
  if (!ID.test(id)) throw new Error(`store: ${file} does not hold a store ID (16 hex digits)`);
  return id;
}
