// Stores in temporary directories for unit tests, removed when the test file ends.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Store } from '../../engine/store/store.js';

/** A function that opens a new empty store each call (directories named `strata-<prefix>-…`). */
export function tempStores(prefix: string): () => Promise<Store> {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  });
  return async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), `strata-${prefix}-`));
    dirs.push(dir);
    return Store.open(dir);
  };
}
