// The images a plan pins (FROM, COPY --from, RUN --mount from=), each once: what a build
// must have in the store before its stages run.
import type { Digest } from '../digest.js';
import type { BuildPlan } from './types.js';

export interface PinnedImage {
  ref: string;
  manifestDigest: Digest;
}

/** In plan order, each manifest digest once. */
export function pinnedImages(plan: Pick<BuildPlan, 'stages'>): PinnedImage[] {
  const seen = new Map<Digest, PinnedImage>();
  const add = (x: { kind: string; ref?: string; manifestDigest?: Digest } | undefined) => {
    if (x?.kind === 'image' && x.ref && x.manifestDigest && !seen.has(x.manifestDigest)) seen.set(x.manifestDigest, { ref: x.ref, manifestDigest: x.manifestDigest });
  };
  for (const stage of plan.stages) {
    add(stage.base);
    for (const step of stage.steps) {
      if (step.kind === 'copy') add(step.from);
      if (step.kind === 'run') for (const m of step.mounts ?? []) if (m.type === 'bind' || m.type === 'cache') add(m.from);
    }
  }
  return [...seen.values()];
}
