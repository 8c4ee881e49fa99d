// Stages: the FROM lines split the Dockerfile into stages, whose graph (FROM, COPY --from,
// RUN --mount from=) --target prunes; each stage's base and --from sources are pinned here.
import { DockerfileError, EngineError } from '../errors.js';
import type { FromInstruction, Instruction } from '../dockerfile/instructions.js';
import { formatPlatform, type Platform } from '../image/platform.js';
import type { ContainerConfig } from '../image/types.js';
import { mountFromValue } from './mounts.js';
import { expandWord, type Where } from './scope.js';
import type { BaseSpec, CopySource, MountSource, PlanOptions, ResolvedImage, StagePlan } from './types.js';

/** The base config of a stage and the plan of its steps, kept while later stages plan. */
export interface PlannedStage {
  plan: StagePlan;
  config: ContainerConfig;
}

export interface RawStage {
  index: number;
  from: FromInstruction;
  name?: string;
  body: Instruction[];
  /** The FROM word after expanding global ARGs. */
  baseRef: string;
  /** Each `COPY --from` of the stage: its value after expanding global ARGs, and the stage it names. */
  copyFrom: Map<Instruction, { value: string; stage?: RawStage }>;
}

/**
 * Splits the instructions from the first FROM on into stages, checking each FROM: its base
 * (global ARGs expanded), its stage name, its --platform.
 */
export function splitStages(instructions: Instruction[], globalArgs: Map<string, string>, esc: string, platform: Platform, at: (line: number) => Where): RawStage[] {
  const rawStages: RawStage[] = [];
  for (const inst of instructions) {
    if (inst.kind === 'FROM') {
      const baseRef = expandWord(inst.image, globalArgs, esc, at(inst.range.startLine));
      if (baseRef === '') throw new DockerfileError(at(inst.range.startLine), 'FROM: base name should not be blank');
      const name = inst.stageName?.toLowerCase();
      if (name !== undefined) {
        if (!/^[a-z][a-z0-9-_.]*$/.test(name)) throw new DockerfileError(at(inst.range.startLine), `FROM: invalid stage name ${JSON.stringify(inst.stageName)}`);
        if (rawStages.some((s) => s.name === name)) throw new DockerfileError(at(inst.range.startLine), `FROM: duplicate stage name ${JSON.stringify(inst.stageName)}`);
      }
      for (const f of inst.flags) {
        if (f.name !== 'platform') throw new DockerfileError(at(inst.range.startLine), `FROM: unknown flag --${f.name}`);
        const wanted = expandWord(f.value ?? '', globalArgs, esc, at(inst.range.startLine));
        // No emulation here: a stage for another platform could not run its RUN steps.
        if (normalizePlatform(wanted) !== formatPlatform(platform)) {
          throw new DockerfileError(at(inst.range.startLine), `FROM --platform=${wanted}: strata builds for ${formatPlatform(platform)} only`);
        }
      }
      rawStages.push({ index: rawStages.length, from: inst, name, body: [], baseRef, copyFrom: new Map() });
    } else {
      rawStages[rawStages.length - 1]!.body.push(inst);
    }
  }
  if (rawStages.length === 0) throw new DockerfileError(at(1), 'no build stage in current context');
  return rawStages;
}

/** Which stages each stage needs, known before any stage is planned. */
export interface StageGraph {
  stageByName: Map<string, RawStage>;
  /** Stages a stage's FROM and COPY --from name. */
  deps: Map<number, number[]>;
  /** The earlier stage a stage's FROM names. */
  baseDep: Map<number, number>;
  /** Stages a stage's RUN --mount from= name. */
  mountDeps: Map<number, number[]>;
  /** Each RUN --mount from= word of a stage: a stage, or an image reference to resolve. */
  mountFroms: Map<number, Map<string, MountSource | string>>;
}

/**
 * Stage graph: a FROM naming an earlier stage depends on it, and so does a COPY --from naming
 * any stage (by name or index). --from is expanded with the global ARGs here, so the graph is
 * known before any stage is planned; a --from naming this stage or a later one (which could
 * only make a cycle) is an error once the stage is planned, not while it is pruned.
 */
export function stageGraph(rawStages: RawStage[], globalArgs: Map<string, string>, esc: string, at: (line: number) => Where): StageGraph {
  const stageByName = new Map<string, RawStage>();
  const allByName = new Map(rawStages.filter((s) => s.name).map((s) => [s.name!, s]));
  const deps = new Map<number, number[]>();
  const baseDep = new Map<number, number>();
  for (const s of rawStages) {
    const dep = stageByName.get(s.baseRef.toLowerCase());
    const stageDeps = new Set<number>(dep ? [dep.index] : []);
    if (dep) baseDep.set(s.index, dep.index);
    for (const inst of s.body) {
      if (inst.kind !== 'COPY' && inst.kind !== 'ADD') continue;
      const flag = inst.flags.find((f) => f.name === 'from');
      if (!flag) continue;
      const value = expandWord(flag.value ?? '', globalArgs, esc, at(inst.range.startLine));
      const named = /^\d+$/.test(value) ? rawStages[Number(value)] : allByName.get(value.toLowerCase());
      s.copyFrom.set(inst, { value, stage: named });
      if (named && named.index < s.index) stageDeps.add(named.index);
    }
    deps.set(
      s.index,
      [...stageDeps].sort((a, b) => a - b),
    );
    if (s.name) stageByName.set(s.name, s);
  }
  // `RUN --mount=from=…` naming an earlier stage (by name or index) needs it built first; any
  // other `from=` is an image, resolved here like a FROM.
  const mountDeps = new Map<number, number[]>();
  const mountFroms = new Map<number, Map<string, MountSource | string>>();
  for (const s of rawStages) {
    const froms = new Map<string, MountSource | string>();
    for (const inst of s.body) {
      if (inst.kind !== 'RUN') continue;
      for (const f of inst.flags) {
        const raw = f.name === 'mount' && f.value !== undefined ? mountFromValue(f.value) : undefined;
        if (raw === undefined) continue;
        const from = expandWord(raw, globalArgs, esc, at(inst.range.startLine));
        const named = stageByName.get(from.toLowerCase());
        const index = /^\d+$/.test(from) ? Number(from) : undefined;
        if (named && named.index < s.index) froms.set(from, { kind: 'stage', stage: named.index });
        else if (index !== undefined && index < s.index) froms.set(from, { kind: 'stage', stage: index });
        else if (index !== undefined || named) throw new DockerfileError(at(inst.range.startLine), `RUN --mount: from=${from} must name an earlier stage`);
        else froms.set(from, from);
      }
    }
    mountFroms.set(s.index, froms);
    mountDeps.set(s.index, [...new Set([...froms.values()].flatMap((m) => (typeof m === 'string' || m.kind !== 'stage' ? [] : [m.stage])))]);
  }
  return { stageByName, deps, baseDep, mountDeps, mountFroms };
}

/** The target stage (the last one unless named) and the stages it needs, in Dockerfile order. */
export function targetStages(rawStages: RawStage[], graph: StageGraph, targetName: string | undefined, at: (line: number) => Where): { target: RawStage; ordered: RawStage[] } {
  let target = rawStages[rawStages.length - 1]!;
  if (targetName !== undefined) {
    const t = graph.stageByName.get(targetName.toLowerCase());
    if (!t) throw new DockerfileError(at(1), `target stage ${JSON.stringify(targetName)} could not be found`);
    target = t;
  }
  const needed = new Set<number>();
  const visit = (idx: number) => {
    if (needed.has(idx)) return;
    needed.add(idx);
    for (const d of [...(graph.deps.get(idx) ?? []), ...(graph.mountDeps.get(idx) ?? [])]) visit(d);
  };
  visit(target.index);
  return { target, ordered: rawStages.filter((s) => needed.has(s.index)) };
}

/** `linux/x86_64` and `Linux/AMD64` are linux/amd64, as containerd's platform parser has it. */
function normalizePlatform(text: string): string {
  const [os = '', arch = '', variant] = text.toLowerCase().split('/');
  const aliases: Record<string, string> = { x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64', i386: '386' };
  return [os, aliases[arch] ?? arch, variant].filter(Boolean).join('/');
}

export async function resolveBase(
  raw: RawStage,
  baseStage: number | undefined,
  planned: Map<number, PlannedStage>,
  opts: PlanOptions,
  at: (line: number) => { file: string; line: number },
): Promise<{ base: BaseSpec; config: ContainerConfig }> {
  if (baseStage !== undefined) {
    const parent = planned.get(baseStage)!;
    return { base: { kind: 'stage', stage: parent.plan.index }, config: structuredClone(parent.config) };
  }
  if (raw.baseRef.toLowerCase() === 'scratch') return { base: { kind: 'scratch' }, config: {} };
  let img: ResolvedImage;
  try {
    img = await opts.resolveImage(raw.baseRef);
  } catch (err) {
    throw imageError(at(raw.from.range.startLine), `FROM ${raw.baseRef}`, err);
  }
  return {
    base: { kind: 'image', ref: img.ref, manifestDigest: img.manifestDigest, configDigest: img.configDigest },
    config: structuredClone(img.config.config ?? {}),
  };
}

/**
 * An image the Dockerfile names could not be resolved: a Dockerfile error at its line, unless
 * the cause is worth a retry (a registry down or answering 5xx), which keeps its retryable
 * code so the planning activity is tried again.
 */
function imageError(where: { file: string; line: number }, what: string, err: unknown): EngineError {
  const detail = err instanceof Error ? err.message : String(err);
  if (err instanceof EngineError && !err.userError) return new EngineError(err.code, `${where.file}:${where.line}: ${what}: ${detail}`, { cause: err });
  return new DockerfileError(where, `${what}: ${detail}`, { cause: err });
}

export async function mountImage(ref: string, opts: PlanOptions, where: { file: string; line: number }): Promise<MountSource> {
  try {
    const img = await opts.resolveImage(ref);
    return { kind: 'image', ref: img.ref, manifestDigest: img.manifestDigest };
  } catch (err) {
    throw imageError(where, `RUN --mount from=${ref}`, err);
  }
}

/**
 * What a `COPY --from` reads: an earlier stage, or else an image, pinned like a FROM image.
 * A --from naming this stage or a later one is an error: it could only be a cycle.
 */
export async function copySource(raw: RawStage, from: { value: string; stage?: RawStage }, opts: PlanOptions, where: { file: string; line: number }): Promise<CopySource> {
  const flag = `--from=${from.value}`;
  if (from.value === '') throw new DockerfileError(where, 'COPY: --from requires a value');
  if (from.stage) {
    if (from.stage.index === raw.index) throw new DockerfileError(where, `COPY ${flag}: a stage cannot copy from itself (circular dependency)`);
    if (from.stage.index > raw.index) {
      throw new DockerfileError(
        where,
        `COPY ${flag}: stage ${from.stage.name ?? from.stage.index} is defined later (line ${from.stage.from.range.startLine}); --from can only name an earlier stage`,
      );
    }
    return { kind: 'stage', stage: from.stage.index };
  }
  if (/^\d+$/.test(from.value)) throw new DockerfileError(where, `COPY ${flag}: there is no stage with index ${from.value}`);
  let img: ResolvedImage;
  try {
    img = await opts.resolveImage(from.value);
  } catch (err) {
    throw imageError(where, `COPY ${flag}: no stage of that name, and no such image`, err);
  }
  return { kind: 'image', ref: img.ref, manifestDigest: img.manifestDigest, configDigest: img.configDigest };
}
