// The planner: turns a parsed Dockerfile, build args and a target into a BuildPlan. Pure but
// for `resolveImage`, which pins each FROM image to digests so the plan is reproducible.
// It orchestrates; each instruction family plans in its own file: stages.ts (FROM, the stage
// graph, --target), args.ts (ARG scopes), configSteps.ts (ENV LABEL … HEALTHCHECK), copy.ts
// (COPY, ADD), run.ts (RUN), onbuild.ts (a base's triggers).
import { DockerfileError, UserInputError } from '../errors.js';
import type { Instruction, ParsedDockerfile } from '../dockerfile/instructions.js';
import { hostPlatform } from '../image/platform.js';
import { planGlobalArgs, unusedArgsWarnings } from './args.js';
import { DEFAULT_PATH, envMap } from './config.js';
import { PlanBudget } from '../dockerfile/limits.js';
import { labelStep, planConfigStep } from './configSteps.js';
import { planCopy } from './copy.js';
import { triggerInstructions } from './onbuild.js';
import { planRun } from './run.js';
import { StageState } from './scope.js';
import { copySource, mountImage, resolveBase, splitStages, stageGraph, targetStages, type PlannedStage } from './stages.js';
import type { BuildPlan, FromStep, PlanOptions, Step } from './types.js';

export type { PlanOptions, ResolvedImage } from './types.js';

/**
 * Plans the build. Every stage is checked for names and FROM references; only the stages
 * the target needs are planned further, so an unneeded broken stage cannot fail the build
 * (BuildKit's behaviour; the classic builder builds every stage).
 */
export async function planDockerfile(df: ParsedDockerfile, opts: PlanOptions): Promise<BuildPlan> {
  const file = df.file;
  const esc = df.escapeChar;
  const at = (line: number) => ({ file, line });
  const usedArgs = new Set<string>();
  const platform = opts.platform ?? hostPlatform();

  const { globalArgs, firstFrom } = planGlobalArgs(df, opts.buildArgs, platform, usedArgs, at);
  const rawStages = splitStages(df.instructions.slice(firstFrom), globalArgs, esc, platform, at);
  const graph = stageGraph(rawStages, globalArgs, esc, at);
  const { deps, baseDep, mountDeps, mountFroms } = graph;
  const { target, ordered } = targetStages(rawStages, graph, opts.target, at);

  const planned = new Map<number, PlannedStage>();
  const budget = new PlanBudget(file);
  let number = 0;
  for (const raw of ordered) {
    const { base, config } = await resolveBase(raw, baseDep.get(raw.index), planned, opts, at);
    const from: FromStep = { kind: 'from', number: ++number, line: raw.from.range.startLine, text: raw.from.text };
    // Both builders give the image docker's PATH when its base has none, so RUN finds its
    // programs and the image records it (BuildKit at FROM, the classic builder at commit).
    if (!envMap(config.Env).has('PATH')) {
      config.Env = [`PATH=${DEFAULT_PATH}`, ...(config.Env ?? [])];
      from.patch = { Env: config.Env };
    }
    // The base's ONBUILD triggers run first, as if written after FROM; the new image does not
    // inherit them (both builders).
    const triggers = triggerInstructions(config.OnBuild ?? [], raw, file);
    if (config.OnBuild?.length) {
      config.OnBuild = null;
      from.patch = { ...from.patch, OnBuild: null };
    }
    const steps: Step[] = [budget.add(from, from.line)];
    const state = new StageState(config, globalArgs, opts.buildArgs, usedArgs, esc);
    for (const [word, m] of mountFroms.get(raw.index)!) {
      state.mountSources.set(word, typeof m === 'string' ? await mountImage(m, opts, at(raw.from.range.startLine)) : m);
    }
    for (const inst of [...triggers, ...raw.body]) {
      const copyFrom = raw.copyFrom.get(inst);
      if (copyFrom) state.copySources.set(inst, await copySource(raw, copyFrom, opts, at(inst.range.startLine)));
      steps.push(budget.add(planInstruction(inst, state, ++number, at), inst.range.startLine));
    }
    planned.set(raw.index, {
      plan: { index: raw.index, name: raw.name, base, dependsOn: [...new Set([...deps.get(raw.index)!, ...mountDeps.get(raw.index)!])], steps },
      config: state.config,
    });
  }

  // `build --label`: a LABEL step per label, sorted by key, after the target's last
  // instruction; the classic builder does the same (dockerd 20.10: `Step 3/3 : LABEL k=v`).
  const last = planned.get(target.index)!;
  checkLabels(opts.labels ?? {});
  for (const key of Object.keys(opts.labels ?? {}).sort()) {
    const step = labelStep(last.config, key, opts.labels![key]!, ++number);
    last.config = { ...last.config, ...step.patch };
    last.plan.steps.push(step);
  }

  const warnings = unusedArgsWarnings(opts.buildArgs, usedArgs);
  return { stages: ordered.map((s) => planned.get(s.index)!.plan), target: target.index, totalSteps: number, warnings };
}

/** One instruction's step, planned by its family. */
function planInstruction(inst: Instruction, s: StageState, number: number, at: (line: number) => { file: string; line: number }): Step {
  const where = at(inst.range.startLine);
  const common = { number, line: inst.range.startLine, text: inst.text };
  switch (inst.kind) {
    case 'COPY':
    case 'ADD':
      return planCopy(inst, s, common, where);
    case 'RUN':
      return planRun(inst, s, common, where);
    case 'FROM':
      throw new DockerfileError(where, 'FROM inside a stage'); // parse.ts splits stages at FROM
    default:
      return planConfigStep(inst, s, common, where);
  }
}

/** Labels come with the workflow's input: bounded like the rest of a plan. */
function checkLabels(labels: Record<string, string>): void {
  const entries = Object.entries(labels);
  if (entries.length > 1000) throw new UserInputError('LABEL_INVALID', `plan build: ${entries.length} --label flags (at most 1000)`);
  let bytes = 0;
  for (const [k, v] of entries) {
    if (k === '' || typeof v !== 'string') throw new UserInputError('LABEL_INVALID', `plan build: --label ${JSON.stringify(k)}: a label needs a name and a string value`);
    bytes += k.length + v.length;
  }
  if (bytes > 256 * 1024) throw new UserInputError('LABEL_INVALID', 'plan build: the --label flags exceed 256 KiB');
}
