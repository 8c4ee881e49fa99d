// `strata load [-i FILE]`: images from a docker or OCI archive (plain or compressed, a file
// or stdin) into the store, reported as docker load reports them.
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { loadArchive } from '../../engine/archive/load.js';
import type { Store } from '../../engine/store/store.js';
import { UsageError } from '../errors.js';

export async function runLoad(store: Store, opts: { input?: string; quiet?: boolean }): Promise<void> {
  if (!opts.input && process.stdin.isTTY) throw new UsageError('requested load from stdin, but stdin is empty');
  const src = opts.input && opts.input !== '-' ? createReadStream(path.resolve(opts.input)) : process.stdin;
  const result = await loadArchive(store, src, opts.quiet ? undefined : (line) => console.error(line));
  for (const m of result.moved) console.log(`The image ${m.tag} already exists, renaming the old one with ID ${m.previous} to empty string`);
  for (const img of result.images) {
    if (img.tags.length === 0) console.log(`Loaded image ID: ${img.id}`);
    for (const t of img.tags) console.log(`Loaded image: ${t}`);
  }
}
