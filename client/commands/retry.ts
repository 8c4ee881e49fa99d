// `strata retry BUILD [--context DIR]`: runs the failed step of a waiting build again, then
// follows the build.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { makeFilter, packContext, readDockerignore } from '../../engine/context/pack.js';
import { Store } from '../../engine/store/store.js';
import { remoteFromEnv } from '../../engine/remote/remoteStore.js';
import type { RetryRequest } from '../../workflows/types.js';
import { UsageError } from '../errors.js';
import { progressOf } from '../follow.js';
import { followBuild } from '../temporalLink.js';
import { formatSize } from '../format.js';
import { withSession } from '../session.js';

export async function runRetry(id: string, opts: { context?: string; detach?: boolean }): Promise<number> {
  const store = await Store.open();
  let request: RetryRequest = {};
  if (opts.context) {
    const dir = path.resolve(opts.context);
    if (!(await fs.stat(dir).catch(() => undefined))?.isDirectory()) throw new UsageError(`retry: context ${opts.context} is not a directory`);
    const context = await store.putBlobStream(packContext(dir, makeFilter(await readDockerignore(dir))));
    // The step may be retried on a worker on another machine (engine/remote/).
    await remoteFromEnv()?.putBlobs(store, [context.digest]);
    console.log(`Sending build context to strata  ${formatSize(context.size)}`);
    request = { contextDigest: context.digest };
  }
  return withSession(async (s) => {
    const p = await progressOf(s, id);
    if (p.phase !== 'waiting') throw new UsageError(`retry: build ${id} is not waiting for a retry (it is ${p.phase})`);
    await s.client.workflow.getHandle(id).signal('retry', request);
    console.log(
      `Retrying ${p.steps
        .filter((x) => x.status === 'failed')
        .map((x) => `step ${x.number}`)
        .join(', ')} of ${id}`,
    );
    if (opts.detach) return 0;
    return followBuild(s, id, p.retries ?? 0);
  }, store);
}
