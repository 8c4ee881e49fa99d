// The pull activity: the layers of an image the plan pinned, fetched into the store before a
// stage needs them. It heartbeats with the download's progress; registry 4xx answers are
// user errors (non-retryable, naming the reference), 5xx and dropped connections retried.
import { Context } from '@temporalio/activity';
import { isDigest } from '../engine/digest.js';
import { UserInputError } from '../engine/errors.js';
import type { PullProgress } from '../engine/registry/pull.js';
import { ensureImage } from '../engine/registry/resolve.js';
import { openLease } from '../engine/store/leases.js';
import type { PullActivities, PullInput } from '../workflows/types.js';
import { buildIdOf } from './cache.js';
import { guarded } from './guarded.js';
import type { ActivityDeps } from './index.js';

export function createPullActivities({ store, remote }: ActivityDeps): PullActivities {
  return {
    pullImage: (input: PullInput) => {
      const ctx = Context.current();
      let latest: PullProgress | undefined;
      return guarded(
        async () => {
          if (typeof input?.ref !== 'string' || typeof input.manifestDigest !== 'string' || !isDigest(input.manifestDigest)) {
            throw new UserInputError('PULL_INPUT_INVALID', 'pull image: the input needs a reference and a sha256 manifest digest');
          }
          // Fetched layers are named by nothing until the image is tagged (or, pinned by digest,
          // until the build's image holds them): the build's lease holds them from the GC.
          const lease = await openLease(store.root, buildIdOf(), { blobs: [input.manifestDigest] });
          try {
            const result = await ensureImage(store, input.ref, input.manifestDigest, { onProgress: (p) => (latest = p), signal: ctx.cancellationSignal });
            await lease.add({ layers: [(await store.loadImage(input.manifestDigest)).layers.at(-1)?.chainId] });
            // Other machines of a remote store take the base from there (engine/remote/).
            await remote?.withSignal(ctx.cancellationSignal).putImage(store, input.manifestDigest);
            return result;
          } finally {
            await lease.close();
          }
        },
        { heartbeat: { details: () => latest } },
      );
    },
  };
}
