// The fuzz cases' side of the runner, in a worker thread (runner.ts can stop it when a case
// hangs): plans cases [from, to) of a seed, as the planBuild activity does, and reports each.
import { parentPort, workerData } from 'node:worker_threads';
import { sha256 } from '../../engine/digest.js';
import { parseDockerfile } from '../../engine/dockerfile/parse.js';
import { EngineError } from '../../engine/errors.js';
import type { ImageConfigFile } from '../../engine/image/types.js';
import { checkPlanSize } from '../../engine/dockerfile/limits.js';
import { planDockerfile, type ResolvedImage } from '../../engine/plan/planner.js';
import { fuzzCase, loadCorpus } from './generate.js';

export type CaseOutcome = { kind: 'ok' } | { kind: 'error'; code: string } | { kind: 'crash'; detail: string };

const CONFIGS: ImageConfigFile['config'][] = [
  { Env: ['PATH=/usr/bin:/bin'], Cmd: ['sh'] },
  {},
  { Env: ['A=from-base'], OnBuild: ['RUN echo triggered', 'ENV T=1'] },
  { User: 'nobody', WorkingDir: '/w', OnBuild: ['COPY --from=0 a b', 'ONBUILD RUN x'] },
];

/** Every reference names an image (its config chosen by the name) except those starting with `missing`. */
async function resolveImage(ref: string): Promise<ResolvedImage> {
  if (ref.startsWith('missing')) throw new Error(`no image ${ref}`);
  const config = structuredClone(CONFIGS[ref.length % CONFIGS.length]!);
  const file: ImageConfigFile = { architecture: 'amd64', os: 'linux', config, rootfs: { type: 'layers', diff_ids: [] }, history: [] };
  return { ref, manifestDigest: sha256(`m ${ref}`), configDigest: sha256(`c ${ref}`), config: file };
}

/** What planning one Dockerfile came to: a plan, a clear engine error, or anything else (a crash). */
export async function runCase(dockerfile: string, buildArgs: Record<string, string>, target?: string): Promise<CaseOutcome> {
  try {
    const df = parseDockerfile(dockerfile);
    const plan = await planDockerfile(df, { buildArgs, target, resolveImage });
    checkPlanSize(plan, df.file);
    return { kind: 'ok' };
  } catch (err) {
    // parse.ts and the planner put any error at its line: a bug (a TypeError, a stack
    // overflow) would come out as a DockerfileError. Its causes tell.
    const bug = bugIn(err);
    if (!bug && err instanceof EngineError && typeof err.code === 'string' && err.code !== '' && err.message !== '') return { kind: 'error', code: err.code };
    const shown = bug ?? err;
    return { kind: 'crash', detail: shown instanceof Error ? (shown.stack ?? shown.message) : String(shown) };
  }
}

/** The first error in `err`'s cause chain that is a JavaScript fault rather than a refusal. */
function bugIn(err: unknown): Error | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 20; e = e.cause, depth++) {
    if (e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError || e instanceof SyntaxError) return e;
  }
  return undefined;
}

if (parentPort && workerData) {
  const { seed, from, to, repo } = workerData as { seed: number; from: number; to: number; repo: string };
  const corpus = loadCorpus(repo);
  for (let index = from; index < to; index++) {
    const c = fuzzCase(seed, index, corpus);
    parentPort.postMessage({ type: 'start', index });
    const started = performance.now();
    const outcome = await runCase(c.dockerfile, c.buildArgs, c.target);
    parentPort.postMessage({ type: 'done', index, outcome, ms: performance.now() - started });
  }
  parentPort.postMessage({ type: 'end' });
}
