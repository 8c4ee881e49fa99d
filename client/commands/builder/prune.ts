// `strata builder prune`: removes build cache, as `docker builder prune` does. Without -a, the
// dangling cache only: entries whose layer no image uses; with -a, every entry. Either way, what
// nothing refers to then goes too (engine/store/refs.ts is the rule): layers, unpacked contexts
// and context blobs, build logs of builds that ended, the step images' time records no kept entry
// needs; with -a, RUN cache mounts and intermediate images too (mounts also when unused since the
// filter). Never what an image or a running build (a lease) holds. `--filter until=DUR` keeps what was used within DUR; `--keep-storage SIZE`
// removes least recently used entries only until the build cache takes SIZE.
import { createInterface } from 'node:readline/promises';
import { collectStore, type CollectPolicy } from '../../../engine/cache/gc.js';
import { parseSize } from '../../../engine/cache/size.js';
import { Store } from '../../../engine/store/store.js';
import { UsageError } from '../../errors.js';
import { formatSize } from '../../format.js';
import { parseDuration } from '../../options.js';

export interface PruneOptions {
  all?: boolean;
  filter: string[];
  keepStorage?: string;
  force?: boolean;
}

export async function runBuilderPrune(opts: PruneOptions): Promise<number> {
  const policy: CollectPolicy = { entries: opts.all ? 'all' : 'unused' };
  for (const f of opts.filter) {
    const eq = f.indexOf('=');
    const [key, value] = eq < 0 ? [f, ''] : [f.slice(0, eq), f.slice(eq + 1)];
    // `unused-for` is the older name docker still takes.
    if (key !== 'until' && key !== 'unused-for') throw new UsageError(`builder prune: --filter ${f}: only until=DURATION is supported (e.g. until=24h)`);
    policy.usedBefore = Date.now() - parseDuration(value);
  }
  if (opts.keepStorage !== undefined) {
    const bytes = parseSize(opts.keepStorage);
    if (bytes === undefined) throw new UsageError(`builder prune: --keep-storage ${opts.keepStorage}: not a size (e.g. 5GB, 500MB)`);
    policy.cacheBytes = bytes;
  }
  if (!opts.force && !(await confirm(opts.all ? 'WARNING! This will remove all build cache.' : 'WARNING! This will remove all dangling build cache.'))) return 0;
  const store = await Store.open();
  const report = (await collectStore(store, policy))!;
  if (report.removed.length > 0) {
    console.log('Deleted build cache objects:');
    for (const r of report.removed)
      if (r.kind !== 'record') console.log(r.kind === 'logs' ? `logs/${r.id}` : r.kind === 'mount' ? `mount/${r.id.slice(0, 20)}` : r.id.slice(0, 25));
    // One per step an image was made for: a count says enough.
    const records = report.removed.filter((r) => r.kind === 'record').length;
    if (records > 0) console.log(`(and ${records} step image time record${records === 1 ? '' : 's'})`);
    console.log('');
  }
  console.log(`Total reclaimed space: ${formatSize(report.reclaimed)}`);
  return 0;
}

async function confirm(warning: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const answer = await rl.question(`${warning} Are you sure you want to continue? [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } catch {
    return false; // no answer (stdin closed)
  } finally {
    rl.close();
  }
}
