// `strata rmi IMAGE…` and `strata image prune`: docker's rows (`Untagged:`, `Deleted:`),
// docker's rules (engine/store/remove.ts), one error per image that could not be removed.
import { createInterface } from 'node:readline/promises';
import { EngineError } from '../../engine/errors.js';
import { pruneImages, removeImage, type RemovalRow } from '../../engine/store/remove.js';
import type { Store } from '../../engine/store/store.js';
import { humanSize } from '../units.js';

/** Removes each image in turn; returns the exit code (1 when any failed, as docker). */
export async function runRmi(store: Store, refs: string[], opts: { force?: boolean }): Promise<number> {
  let failed = false;
  for (const ref of refs) {
    try {
      for (const row of await removeImage(store, ref, opts)) console.log('untagged' in row ? `Untagged: ${row.untagged}` : `Deleted: ${row.deleted}`);
    } catch (err) {
      if (!(err instanceof EngineError && err.userError)) throw err;
      console.error(`Error: ${err.message}`);
      failed = true;
    }
  }
  return failed ? 1 : 0;
}

export interface PruneCliOptions {
  all?: boolean;
  force?: boolean;
  filter?: string[];
}

/** `image prune`: asks first unless -f (as docker), then prints what went and the space freed. */
export async function runImagePrune(store: Store, opts: PruneCliOptions): Promise<number> {
  if (!opts.force) {
    const what = opts.all ? 'all images without at least one container associated to them' : 'all dangling images';
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    const answer = await rl.question(`WARNING! This will remove ${what}.\nAre you sure you want to continue? [y/N] `).catch(() => '');
    rl.close();
    if (!/^y(es)?$/i.test(answer.trim())) return 0;
  }
  const { rows, reclaimed } = await pruneImages(store, { all: opts.all, filters: opts.filter });
  if (rows.length > 0) console.log(`Deleted Images:\n${rows.map(pruneRow).join('\n')}\n`);
  console.log(`Total reclaimed space: ${humanSize(reclaimed)}`);
  return 0;
}

function pruneRow(row: RemovalRow): string {
  return 'untagged' in row ? `untagged: ${row.untagged}` : `deleted: ${row.deleted}`;
}
