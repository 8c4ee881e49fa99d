// Activities: thin wrappers that check input, call one engine function, heartbeat, and turn
// user errors (EngineError.userError) into non-retryable failures. The worker composes them.
import { Context } from '@temporalio/activity';
import { saveToOutputDir } from '../engine/archive/output.js';
import { hostPlatform } from '../engine/image/platform.js';
import { ensureContext } from '../engine/context/unpack.js';
import { parseDockerfile } from '../engine/dockerfile/parse.js';
import { commitImage, stateOf } from '../engine/image/commit.js';
import type { ImageState } from '../engine/image/types.js';
import { pinnedImages, type PinnedImage } from '../engine/plan/pinned.js';
import { planDockerfile } from '../engine/plan/planner.js';
import type { BaseSpec } from '../engine/plan/types.js';
import { executeCopy } from '../engine/steps/copy.js';
import type { Store } from '../engine/store/store.js';
import { EngineError, NotFoundError } from '../engine/errors.js';
import { executeRun } from '../engine/steps/run.js';
import { hostNetworkGrant, type NetworkMode } from '../engine/runtime/network.js';
import { executeWorkdir } from '../engine/steps/workdir.js';
import { resolveBuildImage } from '../engine/registry/resolve.js';
import { stepLogPath } from '../engine/store/logs.js';
import { readBuildSecret } from '../engine/store/secrets.js';
import { writeStepImages } from '../engine/store/intermediate.js';
import { MEDIA_TYPE_MANIFEST } from '../engine/image/types.js';
import type {
  BuildActivities,
  CacheLookupInput,
  CommitInput,
  CopyHeartbeat,
  CopyInput,
  PlanInput,
  RunHeartbeat,
  RunInput,
  SaveInput,
  StepImagesSpec,
  WorkdirInput,
} from '../workflows/types.js';
import { RUN_HEARTBEAT_MS } from '../workflows/types.js';
import { afterCommit, holdingStep, lookupCache } from './cache.js';
import { RemoteStore } from '../engine/remote/remoteStore.js';
import { guarded } from './guarded.js';

/** The build's image: committed from its state, or the one its last step wrote, named and made durable. */
async function commitWithImage(store: Store, input: CommitInput, remote?: RemoteStore): ReturnType<typeof commitImage> {
  if (!input.image) {
    await remote?.getLayers(store, [input.state.layers.at(-1)?.chainId]);
    const made = await commitImage(store, input.state, { tags: input.tags, sourceDateEpoch: input.sourceDateEpoch });
    await remote?.putBlobs(store, [made.imageId, made.manifestDigest]);
    return made;
  }
  // commitImage may run on another machine than the workflow task that wrote the image.
  await remote?.getImage(store, input.image);
  const image = await store.loadImage(input.image);
  await store.syncBlob(image.configDigest);
  await store.syncBlob(image.manifestDigest);
  const size = (await store.readBlob(image.manifestDigest)).length;
  await store.setTags(input.tags, { mediaType: image.manifest.mediaType || MEDIA_TYPE_MANIFEST, digest: image.manifestDigest, size });
  return { imageId: image.configDigest, manifestDigest: image.manifestDigest };
}

export interface ActivityDeps {
  store: Store;
  /** ADD may clone file:// git repositories from this worker's disk (tests, local mirrors). */
  allowFileGit?: boolean;
  /** Entitlements this worker refuses whatever a build asks (`strata worker --deny-entitlement`). */
  deniedEntitlements?: string[];
  /** STRATA_CACHE_MAX: after each build the store is trimmed to this many bytes. */
  cacheMax?: number;
  /** Where builds may have this worker write their `outputs` (STRATA_OUTPUT_DIR); none when absent. */
  outputDir?: string;
  /** Builds may push with this worker's registry credentials (`strata worker --allow-push`). */
  allowPush?: boolean;
  /** Schedules may pack directories under this one on the worker's disk (STRATA_SOURCE_DIR). */
  sourceDir?: string;
  /**
   * STRATA_REMOTE: what an activity needs and this store lacks is fetched from there, and what
   * it makes (layers, cache entries, images) is pushed there before it returns.
   */
  remote?: RemoteStore;
}

export function createActivities(deps: ActivityDeps): BuildActivities {
  const { store, allowFileGit, deniedEntitlements, outputDir, cacheMax } = deps;
  /** The remote store, its transfers cancelled with the activity. */
  const remote = () => deps.remote?.withSignal(Context.current().cancellationSignal);
  /** The unpacked context, its blob fetched from the remote store first if this store lacks it. */
  const contextOf = async (digest: Parameters<typeof ensureContext>[1]) => {
    await remote()?.getBlobs(store, [digest]);
    return ensureContext(store, digest);
  };
  return {
    planBuild: (input: PlanInput) =>
      guarded(async () => {
        await remote()?.getBlobs(store, [input.dockerfileDigest]);
        const text = (await store.readBlob(input.dockerfileDigest)).toString('utf8');
        const df = parseDockerfile(text, input.dockerfileName);
        const plan = await planDockerfile(df, {
          buildArgs: input.buildArgs,
          target: input.target,
          labels: input.labels,
          // The store, else the registry (manifest and config only; pullImage fetches layers).
          resolveImage: (ref) => resolveBuildImage(store, ref, { pull: input.pull, signal: Context.current().cancellationSignal }),
        });
        const pull = await missingImages(store, pinnedImages(plan));
        // Images this store has whole go to the remote store now; the others after their pull.
        for (const image of pinnedImages(plan)) if (!pull.some((p) => p.manifestDigest === image.manifestDigest)) await remote()?.putImage(store, image.manifestDigest);
        return pull.length > 0 ? { ...plan, pull } : plan;
      }),

    lookupCache: (input: CacheLookupInput) =>
      guarded(
        () =>
          lookupCache(store, input, {
            allowFileGit,
            network: checkedNetwork(input.network ?? 'default'),
            remote: remote(),
            // A build's --cache-from: read with this worker's credentials, as FROM pulls are.
            cacheFrom: (name) => new RemoteStore(name, { signal: Context.current().cancellationSignal }),
            contextOf,
          }),
        { heartbeat: true },
      ),

    resolveBase: (base: BaseSpec & { kind: 'image' | 'scratch' }) =>
      guarded(async (): Promise<ImageState> => {
        if (base.kind === 'scratch') return { ...hostPlatform(), config: {}, layers: [], history: [] };
        await remote()?.getImage(store, base.manifestDigest);
        const img = await store.loadImage(base.manifestDigest);
        return stateOf(img.config, img.layers);
      }),

    copyStep: (input: CopyInput) => {
      // Heartbeats carry how much was copied, for clients' progress.
      const progress = { files: 0, bytes: 0 };
      const details = (): CopyHeartbeat => ({ step: input.step.number, ...progress });
      return guarded(
        () =>
          holdingStep(store, { layers: [input.parentTop, input.from?.top], blobs: [input.contextDigest], cacheKey: input.cacheKey, remote: remote() }, async () => {
            const source = input.from ? { kind: 'rootfs' as const, top: input.from.top } : { kind: 'context' as const, dir: await contextOf(input.contextDigest) };
            return executeCopy(store, {
              parentTop: input.parentTop,
              step: input.step,
              source,
              sourceDateEpoch: input.sourceDateEpoch,
              allowFileGit,
              network: checkedNetwork(input.network ?? 'default'),
              hostNetwork: hostNetworkGrant(input.entitlements, deniedEntitlements),
              progress,
            });
          }),
        { heartbeat: { details } },
      );
    },

    runStep: (input: RunInput) => {
      const ctx = Context.current();
      const output = new OutputBeat(input.step.number);
      const buildId = ctx.info.workflowExecution?.workflowId ?? 'standalone';
      // Heartbeats carry the newest output (clients stream it from the pending activity's
      // details, from any machine) and bring cancellation to the running container.
      const heartbeat = { everyMs: RUN_HEARTBEAT_MS, details: () => output.take() };
      const held = { layers: [input.parentTop, ...(input.stageTops ?? []).map((t) => t.top)], blobs: [input.contextDigest], cacheKey: input.cacheKey, remote: remote() };
      return guarded(
        () =>
          holdingStep(store, held, () =>
            executeRun(store, {
              parentTop: input.parentTop,
              step: input.step,
              network: checkedNetwork(input.network),
              hostNetwork: hostNetworkGrant(input.entitlements, deniedEntitlements),
              sourceDateEpoch: input.sourceDateEpoch,
              timeoutMs: input.stepTimeoutMs,
              logFile: stepLogPath(store.root, buildId, input.step.number),
              onOutput: (chunk) => output.push(chunk),
              signal: ctx.cancellationSignal,
              mountInputs: {
                stageTops: Object.fromEntries((input.stageTops ?? []).map((t) => [t.stage, t.top])),
                contextDir: () => {
                  if (!input.contextDigest) throw new Error('run step: a context mount needs the context digest');
                  return contextOf(input.contextDigest);
                },
                // Secrets come through the store, never through Temporal (engine/store/secrets.ts).
                secret: (id) => readBuildSecret(store.root, buildId, id),
              },
            }),
          ).catch((err: unknown) => {
            // A cancelled step reports Temporal's cancellation, not an engine error.
            if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? err;
            throw err;
          }),
        { heartbeat },
      );
    },

    workdirStep: (input: WorkdirInput) =>
      guarded(() => holdingStep(store, { layers: [input.parentTop], blobs: [], cacheKey: input.cacheKey, remote: remote() }, () => executeWorkdir(store, input)), {
        heartbeat: true,
      }),

    commitImage: (input: CommitInput) =>
      guarded(async () => {
        const result = await commitWithImage(store, input, remote());
        await afterCommit(store, cacheMax);
        return result;
      }),

    // A local activity, on whichever worker runs the workflow task: the parent comes from the
    // remote store if need be, and the last image goes there for the next call or the commit.
    writeStepImages: (input: StepImagesSpec) =>
      guarded(async () => {
        const r = remote();
        if (r && 'manifestDigest' in input.parent) await r.getImage(store, input.parent.manifestDigest);
        const made = await writeStepImages(store, input, new Date(), r?.madeRecords(store));
        const last = made.at(-1);
        if (r && last) await r.putBlobs(store, [last.imageId, last.manifestDigest]);
        return made;
      }),

    saveImage: (input: SaveInput) =>
      guarded(
        async () => {
          await remote()?.getImage(store, input.manifestDigest);
          const image = await store.loadImage(input.manifestDigest);
          return saveToOutputDir(store, [{ image, tags: input.tags }], outputDir, input.dest);
        },
        { heartbeat: true },
      ),
  };
}

/** The images whose layers this store lacks (an image loads only when all of it is there). */
async function missingImages(store: Store, images: PinnedImage[]): Promise<PinnedImage[]> {
  const missing: PinnedImage[] = [];
  for (const image of images) {
    try {
      await store.loadImage(image.manifestDigest);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      missing.push(image);
    }
  }
  return missing;
}

/** A workflow input is anyone's: an unknown mode must not fall through to the host's network. */
function checkedNetwork(mode: unknown): NetworkMode {
  if (mode === 'default' || mode === 'none' || mode === 'host') return mode;
  throw new EngineError('NETWORK_INVALID', `run step: network must be default, none or host, got ${JSON.stringify(mode)}`, { userError: true });
}

/** The most output one heartbeat carries; a client that falls behind is told to see the log. */
const BEAT_BYTES = 64 * 1024;

/** Output not yet sent in a heartbeat. */
class OutputBeat {
  private pending: Buffer[] = [];
  private offset = 0;
  constructor(private readonly step: number) {}
  push(chunk: Buffer): void {
    this.pending.push(chunk);
  }
  take(): RunHeartbeat {
    let buf = Buffer.concat(this.pending);
    this.pending = [];
    const start = this.offset;
    this.offset += buf.length;
    let skipped = 0;
    if (buf.length > BEAT_BYTES) {
      skipped = buf.length - BEAT_BYTES;
      buf = buf.subarray(skipped);
    }
    return { step: this.step, offset: start + skipped, text: buf.toString('utf8') };
  }
}
