// The stages of a build with the instruction cache (builds started since it came; older ones
// replay on buildImage's plain path, see CACHE_PATCH). Each stage asks lookupCache for the keys
// of its steps and the entries that serve them, one call for a run of steps, and applies the
// hits without running anything; from the first miss on, steps run and record their results
// under their keys. A look-up covers the steps up to the first one that reads a stage not
// finished yet (COPY --from, RUN --mount from=): its key needs that stage's result.
import type { Digest } from '../engine/digest.js';
import type { CacheStart } from '../engine/cache/lookup.js';
import type { ImageState } from '../engine/image/types.js';
import type { StagePlan, Step } from '../engine/plan/types.js';
import {
  applyConfig,
  attemptStep,
  changeOf,
  executeStep,
  proxy,
  shortId,
  showDetails,
  stepFailed,
  topOf,
  withResult,
  writeImages,
  type StageEnv,
  type StageResult,
} from './executeStep.js';
import { LONG, STEP } from './activityOptions.js';
import { routed } from './sticky.js';
import type { BuildActivities, CacheLookupInput, CacheLookupResult, StepChange, StepImage, StepProgress } from './types.js';

/** The `patched()` marker of builds that use the instruction cache. */
export const CACHE_PATCH = 'instruction-cache';

export class CachedStages {
  /** Each stage's last key: a stage built FROM it chains from there. */
  private readonly keys = new Map<number, Promise<Digest>>();
  /** Stages whose result is known (their promise settled), in the order they settled. */
  private readonly finished = new Set<number>();

  /** The context the build started with. */
  private readonly context: Digest;

  constructor(private readonly env: StageEnv) {
    this.context = env.req.contextDigest;
  }

  /**
   * Keys are made of the build's context: once a retry brought a new one, keys made before it
   * are stale and a step's result is no longer sure to match its key, so from then on the
   * build neither uses nor records entries.
   */
  private keysValid(): boolean {
    return this.env.req.contextDigest === this.context;
  }

  /** Starts a stage; its result (the state and image) is what the build's `results` map holds. */
  start(stage: StagePlan): Promise<StageResult> {
    const run = this.runStage(stage);
    this.keys.set(
      stage.index,
      run.then((r) => r.key),
    );
    // A stage's failure is reported through its state's promise; this one only chains keys.
    this.keys.get(stage.index)!.catch(() => undefined);
    const result = run.then((r): StageResult => ({ state: r.state, image: r.image }));
    result.then(
      () => this.finished.add(stage.index),
      () => undefined,
    );
    return result;
  }

  /** Whether a stage uses cache entries: not under --no-cache, nor named by --no-cache-filter. */
  private usesCache(stage: StagePlan): boolean {
    const { req } = this.env;
    if (req.noCache) return false;
    return !(req.noCacheFilter ?? []).some((f) => f.toLowerCase() === stage.name || f === String(stage.index));
  }

  private track(n: number): StepProgress {
    return this.env.progress.steps.find((s) => s.number === n)!;
  }

  private async runStage(stage: StagePlan): Promise<{ state: ImageState; image?: StepImage; key: Digest }> {
    const { env } = this;
    const { withImages } = env;
    const steps = stage.steps;
    // The worker that ran the stage's last step (builds with sticky routing).
    const route = env.sticky ? {} : undefined;
    const from = this.track(steps[0]!.number);
    from.status = 'running';
    from.startedAt = new Date().toISOString();
    showDetails(env.progress);
    let state: ImageState | undefined;
    // The stage's image so far (step images), and changes not in an image yet (FROM's PATH).
    let image: StepImage | undefined;
    let pending: StepChange[] = [];
    let start: CacheStart;
    if (stage.base.kind === 'stage') {
      ({ state, image } = await env.results.get(stage.base.stage)!);
      start = { kind: 'key', key: await this.keys.get(stage.base.stage)! };
    } else {
      start = { kind: 'base', base: stage.base };
      if (stage.base.kind === 'image') image = { imageId: stage.base.configDigest, manifestDigest: stage.base.manifestDigest };
    }
    let missed = !this.usesCache(stage);
    // Steps applied without running (hits, and the config steps among them) whose images are
    // not written yet: they are done once written, so ` ---> ID` always names an image. A
    // config step shows as cached when the filesystem step after it hits (or, at the end, the
    // one before it did): it has no entry of its own.
    const batch: { p: StepProgress; step: Step; change: StepChange; cached?: boolean }[] = [];
    let lastHit = true;
    const settle = (cached: boolean) => {
      lastHit = cached;
      for (const b of batch) b.cached ??= cached;
    };
    const flush = async (at: ImageState, cached: boolean) => {
      settle(cached);
      const items = batch.splice(0);
      if (items.length === 0) return;
      if (withImages) {
        const made = await writeImages(
          env,
          { image, state: at },
          pending,
          items.map((b) => [b.change]),
          items.map((b) => b.p.number),
          items.map((b) => b.cached === true),
        );
        made.forEach((m, k) => (items[k]!.p.image = shortId(m.imageId)));
        image = made[made.length - 1]!;
        pending = [];
      }
      const endedAt = new Date().toISOString();
      for (const b of items) {
        b.p.status = 'done';
        b.p.endedAt = endedAt;
        if (b.cached) b.p.cached = true;
        else if (b.step.kind === 'config') b.p.layer = undefined;
      }
      showDetails(env.progress);
    };
    // Runs a step (and writes its image); with `key`, its activity records its result under it.
    const run = (step: Step, before: ImageState, key?: Digest) => {
      const p = this.track(step.number);
      return attemptStep(env, p, step, async () => {
        const out = await executeStep(env, step, before, key, route);
        if (out.result?.layer) p.layer = shortId(out.result.layer.chainId);
        const change = step.kind === 'config' ? { config: step.patch, history: step.history } : out.result ? changeOf(step, out.result) : undefined;
        if (withImages && change) {
          p.endedAt = new Date().toISOString();
          const [made] = await writeImages(env, { image, state: before }, pending, [[change]], [step.number]);
          image = made!;
          p.image = shortId(made!.imageId);
          pending = [];
        }
        return out;
      });
    };
    let lastKey: Digest | undefined;
    // steps[i] is the first step the next look-up keys; with `ranFirst` it ran already and
    // the look-up keys it on its result.
    let i = 0;
    let ranFirst = false;
    while (i < steps.length) {
      for (const s of stagesRead(steps[i]!)) await env.results.get(s);
      let end = i + 1;
      while (end < steps.length && stagesRead(steps[end]!).every((s) => this.finished.has(s))) end++;
      const segment = steps.slice(i, end);
      const stageTops: { stage: number; top?: Digest }[] = [];
      for (const s of new Set(segment.flatMap(stagesRead))) stageTops.push({ stage: s, top: topOf((await env.results.get(s)!).state) });
      let found: CacheLookupResult | undefined;
      while (!found) {
        try {
          const input: CacheLookupInput = {
            start,
            parentTop: state ? topOf(state) : undefined,
            steps: segment,
            contextDigest: env.req.contextDigest,
            stageTops,
            sourceDateEpoch: env.req.sourceDateEpoch,
            network: env.req.network ?? 'default',
            useCache: !missed && this.keysValid(),
            // Only when asked: the look-ups of older histories had no such field.
            ...(env.req.cacheFrom?.length ? { cacheFrom: env.req.cacheFrom } : {}),
          };
          found = await routed(route, route ? STEP : LONG, (o) => proxy<BuildActivities>(o, lookupSummary(segment)).lookupCache(input));
        } catch (err) {
          // A look-up fails on what its steps read (a context that is not there, a base): the
          // step that reads it fails, and a retry (perhaps with a new context) looks up again.
          const step = segment.find(readsContext) ?? segment[0]!;
          await stepFailed(env, this.track(step.number), step, err);
          this.track(step.number).status = step.kind === 'from' ? 'running' : 'pending';
        }
      }
      if (found.base) state = found.base;
      let cur = state!;
      for (const [k, { key, hit }] of found.steps.entries()) {
        const step = segment[k]!;
        lastKey = key;
        if (k === 0 && ranFirst) continue;
        const p = this.track(step.number);
        if (step.kind === 'from') {
          if (step.patch) {
            cur = { ...cur, config: { ...cur.config, ...step.patch } };
            pending.push({ config: step.patch });
          }
          // FROM shows its base's ID, as docker does; the default PATH goes into the next
          // step's image, or into one of its own when no step follows.
          if (withImages && pending.length > 0 && steps.length === 1) {
            image = (await writeImages(env, { image, state: cur }, pending, [[]], [step.number]))[0]!;
            pending = [];
          }
          from.layer = cur.layers.length > 0 ? shortId(topOf(cur)!) : undefined;
          if (withImages && image) from.image = shortId(image.imageId);
          from.status = 'done';
          from.endedAt = new Date().toISOString();
          continue;
        }
        if (!missed && step.kind === 'config') {
          cur = applyConfig(cur, step);
          p.status = 'running';
          p.startedAt = new Date().toISOString();
          p.layer = shortId(key);
          batch.push({ p, step, change: { config: step.patch, history: step.history } });
          continue;
        }
        if (!missed && hit) {
          cur = applyHit(cur, step, hit);
          settle(true);
          p.status = 'running';
          p.startedAt = new Date().toISOString();
          p.layer = shortId(hit.layer?.chainId ?? key);
          batch.push({ p, step, change: changeOf(step, hit), cached: true });
          continue;
        }
        if (step.kind !== 'config') missed = true;
        await flush(cur, false);
        cur = (await run(step, cur, this.keysValid() ? key : undefined)).state;
      }
      state = cur;
      if (found.steps.length < segment.length) {
        // This step's key is its result's: it runs, and the next look-up starts from it.
        i += found.steps.length;
        const step = steps[i]!;
        missed = true;
        await flush(state, false);
        const out = await run(step, state);
        state = out.state;
        start = { kind: 'result', parentKey: lastKey!, diffId: out.result?.layer?.diffId };
        ranFirst = true;
      } else {
        await flush(state, lastHit);
        start = { kind: 'key', key: lastKey! };
        i = end;
        ranFirst = false;
      }
    }
    await flush(state!, lastHit);
    showDetails(env.progress);
    return { state: state!, image: withImages ? image : undefined, key: lastKey! };
  }
}

/** The Web UI's name of a look-up: the steps it keys. */
function lookupSummary(segment: Step[]): string {
  const first = segment[0]!;
  const last = segment[segment.length - 1]!;
  return first === last ? `cache look-up: step ${first.number} (${first.text})` : `cache look-up: steps ${first.number}-${last.number} (${first.text} …)`;
}

/** A hit's layer and history on the state, and a WORKDIR's config, without running anything. */
function applyHit(state: ImageState, step: Step, hit: NonNullable<CacheLookupResult['steps'][number]['hit']>): ImageState {
  const withConfig = step.kind === 'workdir' ? { ...state, config: { ...state.config, ...step.patch } } : state;
  return withResult(withConfig, hit);
}

/** Whether a step reads the build context (COPY and ADD without --from, RUN --mount from it). */
function readsContext(step: Step): boolean {
  if (step.kind === 'copy') return !step.from;
  if (step.kind === 'run') return (step.mounts ?? []).some((m) => (m.type === 'bind' || m.type === 'cache') && m.from?.kind === 'context');
  return false;
}

/** The stages a step reads (COPY --from a stage, RUN --mount from= a stage). */
function stagesRead(step: Step): number[] {
  const out: number[] = [];
  if (step.kind === 'copy' && step.from?.kind === 'stage') out.push(step.from.stage);
  if (step.kind === 'run') {
    for (const m of step.mounts ?? []) {
      const from = m.type === 'bind' || m.type === 'cache' ? m.from : undefined;
      if (from?.kind === 'stage' && !out.includes(from.stage)) out.push(from.stage);
    }
  }
  return out;
}
