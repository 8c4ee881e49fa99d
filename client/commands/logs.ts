// `strata logs BUILD [--step N]`: a build's RUN output, kept whole in the store.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { buildLogDir } from '../../engine/store/logs.js';
import { Store } from '../../engine/store/store.js';
import { UsageError } from '../errors.js';

export async function runLogs(build: string, opts: { step?: number }): Promise<void> {
  const store = await Store.open();
  const dir = buildLogDir(store.root, build);
  const files = (await fs.readdir(dir).catch(() => [] as string[]))
    .map((f) => ({ f, n: Number(/^step-(\d+)\.log$/.exec(f)?.[1]) }))
    .filter((x) => !Number.isNaN(x.n) && (opts.step === undefined || x.n === opts.step))
    .sort((a, b) => a.n - b.n);
  if (files.length === 0) throw new UsageError(`logs: no output kept for ${build}${opts.step !== undefined ? ` step ${opts.step}` : ''} in ${store.root}`);
  for (const { f, n } of files) {
    if (opts.step === undefined) process.stdout.write(`--- step ${n} ---\n`);
    process.stdout.write(await fs.readFile(path.join(dir, f)));
  }
}
