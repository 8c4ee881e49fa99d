// Activities: thin wrappers that check input, call one engine function, heartbeat, and turn
// user errors (EngineError.userError) into non-retryable failures. The worker composes them.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { saveImages } from '../engine/archive/save.js';
import { hostPlatform } from '../engine/archive/import.js';
import { ensureContext } from '../engine/context/unpack.js';
import { parseDockerfile } from '../engine/dockerfile/parse.js';
import { EngineError } from '../engine/errors.js';
import { commitImage, stateOf } from '../engine/image/commit.js';
import type { ImageState } from '../engine/image/types.js';
import { planDockerfile } from '../engine/plan/planner.js';
import type { BaseSpec } from '../engine/plan/types.js';
import { executeCopy } from '../engine/steps/copy.js';
import type { Store } from '../engine/store/store.js';
import type { BuildActivities, CommitInput, CopyInput, PlanInput, SaveInput } from '../workflows/types.js';

export interface ActivityDeps {
  store: Store;
}

export function createActivities({ store }: ActivityDeps): BuildActivities {
  return {
    planBuild: (input: PlanInput) =>
      guarded(async () => {
        const text = (await store.readBlob(input.dockerfileDigest)).toString('utf8');
        const df = parseDockerfile(text, input.dockerfileName);
        return planDockerfile(df, {
          buildArgs: input.buildArgs,
          target: input.target,
          resolveImage: async (ref) => {
            const img = await store.getImage(ref);
            return { ref, manifestDigest: img.manifestDigest, configDigest: img.configDigest, config: img.config };
          },
        });
      }),

    resolveBase: (base: BaseSpec & { kind: 'image' | 'scratch' }) =>
      guarded(async (): Promise<ImageState> => {
        if (base.kind === 'scratch') return { ...hostPlatform(), config: {}, layers: [], history: [] };
        const img = await store.loadImage(base.manifestDigest);
        return stateOf(img.config, img.layers);
      }),

    copyStep: (input: CopyInput) =>
      guarded(
        async () => {
          const contextDir = await ensureContext(store, input.contextDigest);
          return executeCopy(store, { parent: input.parent, step: input.step, contextDir, sourceDateEpoch: input.sourceDateEpoch });
        },
        { heartbeat: true },
      ),

    commitImage: (input: CommitInput) => guarded(() => commitImage(store, input.state, { tags: input.tags, sourceDateEpoch: input.sourceDateEpoch })),

    saveImage: (input: SaveInput) =>
      guarded(
        async () => {
          const image = await store.loadImage(input.manifestDigest);
          const { size } = await saveImages(store, [{ image, tags: input.tags }], input.dest);
          return { dest: input.dest, size };
        },
        { heartbeat: true },
      ),
  };
}

/** How often a long activity tells Temporal it is alive. */
const HEARTBEAT_MS = 10_000;

async function guarded<T>(fn: () => Promise<T>, opts: { heartbeat?: boolean } = {}): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  if (opts.heartbeat) {
    const ctx = Context.current();
    ctx.heartbeat();
    timer = setInterval(() => ctx.heartbeat(), HEARTBEAT_MS);
  }
  try {
    return await fn();
  } catch (err) {
    if (err instanceof EngineError && err.userError) {
      throw ApplicationFailure.create({ message: err.message, type: err.code, nonRetryable: true });
    }
    throw err;
  } finally {
    if (timer) clearInterval(timer);
  }
}
