// The push activity: an image from the store to a registry. It heartbeats with the upload's
// progress; registry 4xx answers are user errors (non-retryable), 5xx and an unreachable
// registry are retried by Temporal.
import { Context } from '@temporalio/activity';
import { pushImage, type PushProgress } from '../engine/registry/push.js';
import { recordRepoDigest } from '../engine/store/images.js';
import type { PushActivities, PushInput } from '../workflows/types.js';
import { guarded } from './guarded.js';
import type { ActivityDeps } from './index.js';

export function createPushActivities({ store, remote }: ActivityDeps): PushActivities {
  return {
    pushImage: (input: PushInput) => {
      const ctx = Context.current();
      let latest: PushProgress | undefined;
      return guarded(
        async () => {
          await remote?.withSignal(ctx.cancellationSignal).getImage(store, input.manifestDigest);
          const image = await store.loadImage(input.manifestDigest);
          const result = await pushImage(store, image, input.reference, { onProgress: (p) => (latest = p), signal: ctx.cancellationSignal });
          await recordRepoDigest(store, input.manifestDigest, result.reference, result.digest);
          return result;
        },
        { heartbeat: { details: () => latest } },
      );
    },
  };
}
