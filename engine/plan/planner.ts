// The planner: turns a parsed Dockerfile, build args and a target into a BuildPlan. Pure but
// for `resolveImage`, which pins each FROM image to digests so the plan is reproducible.
import posixPath from 'node:path/posix';
import type { Digest } from '../digest.js';
import { DockerfileError } from '../errors.js';
import { processHeredocBody, processWord, processWords } from '../dockerfile/expand.js';
import { formatPlatform, hostPlatform, platformArgs, type Platform } from '../image/platform.js';
import { parseDockerfile, parseHeredocWord } from '../dockerfile/parse.js';
import { classifyAddSource } from './addSource.js';
import type {
  CommandForm,
  CopyInstruction,
  FromInstruction,
  HealthcheckInstruction,
  Instruction,
  ParsedDockerfile,
  RunInstruction,
} from '../dockerfile/instructions.js';
import type { ContainerConfig, HealthConfig, HistoryEntry, ImageConfigFile } from '../image/types.js';
// History texts are Go's fmt output in both builders: `%v` of a []string (`[a b]`) for SHELL,
// VOLUME and EXPOSE, `%q` (`["a" "b"]`) for CMD and ENTRYPOINT.
import { formatGoDuration, goList, goQuoteRune, goQuotedList, parseGoDuration } from './gofmt.js';
import { DEFAULT_PATH, DEFAULT_SHELL, envMap, isValidSignal, parsePortSpec, setEnv, withExposedPorts } from './config.js';
import { checkOnbuildTriggers, PlanBudget } from './limits.js';
import { checkSymbolicMode } from './mode.js';
import { mountFromValue, parseRunMount } from './mounts.js';
import type { BaseSpec, BuildPlan, ConfigStep, CopySource, CopyStep, FromStep, InlineFile, MountSource, RunMount, RunStep, StagePlan, Step } from './types.js';

export interface ResolvedImage {
  ref: string;
  manifestDigest: Digest;
  configDigest: Digest;
  config: ImageConfigFile;
}

export interface PlanOptions {
  buildArgs: Record<string, string>;
  /** Stage name to build; the last stage when absent. */
  target?: string;
  /** The platform built for (and on); the host's by default. */
  platform?: Platform;
  /** Finds an image by reference (local store now, registries later). Throws when absent. */
  resolveImage: (ref: string) => Promise<ResolvedImage>;
}

/** The base config of a stage and the plan of its steps, kept while later stages plan. */
interface PlannedStage {
  plan: StagePlan;
  config: ContainerConfig;
}

interface RawStage {
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

  // Global ARGs (before the first FROM) are visible to FROM lines only, and to stages
  // that re-declare them.
  const globalArgs = new Map<string, string>(Object.entries(platformArgs(platform)));
  let i = 0;
  for (; i < df.instructions.length && df.instructions[i]!.kind !== 'FROM'; i++) {
    const inst = df.instructions[i]!;
    if (inst.kind !== 'ARG') throw new DockerfileError(at(inst.range.startLine), `${inst.kind} cannot come before the first FROM`);
    for (const a of inst.args) {
      const value = argValue(a.key, a.value, globalArgs, opts.buildArgs, esc, at(inst.range.startLine));
      if (value !== undefined) globalArgs.set(a.key, value);
      if (a.key in opts.buildArgs) usedArgs.add(a.key);
    }
  }

  const rawStages: RawStage[] = [];
  for (; i < df.instructions.length; i++) {
    const inst = df.instructions[i]!;
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

  // Stage graph: a FROM naming an earlier stage depends on it, and so does a COPY --from naming
  // any stage (by name or index). --from is expanded with the global ARGs here, so the graph is
  // known before any stage is planned; a --from naming this stage or a later one (which could
  // only make a cycle) is an error once the stage is planned, not while it is pruned.
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
    deps.set(s.index, [...stageDeps].sort((a, b) => a - b));
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

  let target = rawStages[rawStages.length - 1]!;
  if (opts.target !== undefined) {
    const t = stageByName.get(opts.target.toLowerCase());
    if (!t) throw new DockerfileError(at(1), `target stage ${JSON.stringify(opts.target)} could not be found`);
    target = t;
  }
  const needed = new Set<number>();
  const visit = (idx: number) => {
    if (needed.has(idx)) return;
    needed.add(idx);
    for (const d of [...(deps.get(idx) ?? []), ...(mountDeps.get(idx) ?? [])]) visit(d);
  };
  visit(target.index);

  const ordered = rawStages.filter((s) => needed.has(s.index));
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

  const warnings: string[] = [];
  const unused = Object.keys(opts.buildArgs).filter((k) => !usedArgs.has(k) && !PROXY_ARGS.has(k));
  if (unused.length > 0) warnings.push(`One or more build-args [${unused.sort().join(' ')}] were not consumed`);
  return { stages: ordered.map((s) => planned.get(s.index)!.plan), target: target.index, totalSteps: number, warnings };
}

/** `linux/x86_64` and `Linux/AMD64` are linux/amd64, as containerd's platform parser has it. */
function normalizePlatform(text: string): string {
  const [os = '', arch = '', variant] = text.toLowerCase().split('/');
  const aliases: Record<string, string> = { x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64', i386: '386' };
  return [os, aliases[arch] ?? arch, variant].filter(Boolean).join('/');
}

/** A base's ONBUILD triggers as instructions, placed at the stage's FROM line. */
function triggerInstructions(triggers: string[], raw: RawStage, file: string): Instruction[] {
  const line = raw.from.range.startLine;
  checkOnbuildTriggers(triggers.length, raw.baseRef, file, line);
  return triggers.flatMap((t) => {
    let parsed: ParsedDockerfile;
    try {
      // The parser wants a stage to put the line in.
      parsed = parseDockerfile(`FROM scratch\n${t}`, file);
    } catch (err) {
      throw new DockerfileError({ file, line }, `ONBUILD trigger ${JSON.stringify(t)} of ${raw.baseRef}: ${(err as Error).message}`, { cause: err });
    }
    return parsed.instructions.slice(1).map((inst) => ({ ...inst, range: { startLine: line, endLine: line } }));
  });
}

async function resolveBase(
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
    const detail = err instanceof Error ? err.message : String(err);
    throw new DockerfileError(at(raw.from.range.startLine), `FROM ${raw.baseRef}: ${detail}`, { cause: err });
  }
  return {
    base: { kind: 'image', ref: img.ref, manifestDigest: img.manifestDigest, configDigest: img.configDigest },
    config: structuredClone(img.config.config ?? {}),
  };
}

/** docker's predefined build args: usable without ARG, never recorded, never "unused". */
const PROXY_ARGS = new Set(['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy']);

async function mountImage(ref: string, opts: PlanOptions, where: { file: string; line: number }): Promise<MountSource> {
  try {
    const img = await opts.resolveImage(ref);
    return { kind: 'image', ref: img.ref, manifestDigest: img.manifestDigest };
  } catch (err) {
    throw new DockerfileError(where, `RUN --mount from=${ref}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/**
 * What a `COPY --from` reads: an earlier stage, or else an image, pinned like a FROM image.
 * A --from naming this stage or a later one is an error: it could only be a cycle.
 */
async function copySource(
  raw: RawStage,
  from: { value: string; stage?: RawStage },
  opts: PlanOptions,
  where: { file: string; line: number },
): Promise<CopySource> {
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
    const detail = err instanceof Error ? err.message : String(err);
    throw new DockerfileError(where, `COPY ${flag}: no stage of that name, and no such image: ${detail}`, { cause: err });
  }
  return { kind: 'image', ref: img.ref, manifestDigest: img.manifestDigest, configDigest: img.configDigest };
}

/** What is in scope while a stage's instructions are planned. */
class StageState {
  /** ARGs declared in this stage, with their values (undefined: declared without value). */
  readonly args = new Map<string, string | undefined>();
  /** CMD set in this stage, so a later ENTRYPOINT keeps it (docker's rule). */
  cmdSet = false;
  /** What each `RUN --mount` `from=` of this stage names, resolved before planning. */
  readonly mountSources = new Map<string, MountSource>();
  /** The resolved `--from` of each COPY in the stage. */
  readonly copySources = new Map<Instruction, CopySource>();
  constructor(
    public config: ContainerConfig,
    readonly globalArgs: Map<string, string>,
    readonly buildArgs: Record<string, string>,
    readonly usedArgs: Set<string>,
    readonly esc: string,
  ) {}

  /** Variables for expansion: stage ARGs, overridden by ENV (ENV wins, as in docker). */
  vars(): Map<string, string> {
    const m = new Map<string, string>();
    for (const [k, v] of this.args) if (v !== undefined) m.set(k, v);
    for (const [k, v] of envMap(this.config.Env)) m.set(k, v);
    return m;
  }
}

function planInstruction(inst: Instruction, s: StageState, number: number, at: (line: number) => { file: string; line: number }): Step {
  const where = at(inst.range.startLine);
  const common = { number, line: inst.range.startLine, text: inst.text };
  const config = (patch: Partial<ContainerConfig>, createdBy: string): ConfigStep => {
    s.config = { ...s.config, ...patch };
    return { kind: 'config', ...common, patch, history: { created_by: createdBy, empty_layer: true } };
  };
  const noFlags = () => {
    const f = inst.flags[0];
    if (f) throw new DockerfileError(where, `${inst.kind}: unknown flag --${f.name}`);
  };
  const word = (w: string) => expandWord(w, s.vars(), s.esc, where);

  switch (inst.kind) {
    case 'ARG': {
      noFlags();
      const shown: string[] = [];
      for (const a of inst.args) {
        const value = argValue(a.key, a.value, s.vars(), s.buildArgs, s.esc, where) ?? s.globalArgs.get(a.key);
        if (a.key in s.buildArgs) s.usedArgs.add(a.key);
        s.args.set(a.key, value);
        shown.push(value === undefined ? a.key : `${a.key}=${value}`);
      }
      return config({}, `ARG ${shown.join(' ')}`);
    }
    case 'ENV': {
      noFlags();
      let env = s.config.Env;
      const shown: string[] = [];
      for (const p of inst.pairs) {
        // Keys are expanded too (`ENV ${PREFIX}_HOME=…`), as values are: with the ENV before this line.
        const key = word(p.key);
        if (key === '') throw new DockerfileError(where, `ENV: ${JSON.stringify(p.key)} expands to an empty name`);
        const value = word(p.value ?? '');
        env = setEnv(env, key, value);
        shown.push(`${key}=${value}`);
      }
      return config({ Env: env }, `ENV ${shown.join(' ')}`);
    }
    case 'LABEL': {
      noFlags();
      const labels = { ...(s.config.Labels ?? {}) };
      const shown: string[] = [];
      for (const p of inst.pairs) {
        const key = word(p.key);
        const value = word(p.value ?? '');
        labels[key] = value;
        shown.push(`${key}=${value}`);
      }
      return config({ Labels: labels }, `LABEL ${shown.join(' ')}`);
    }
    case 'WORKDIR': {
      noFlags();
      // Both builders keep an absolute path as written (`/a/../b`, `/a/`) in the config and
      // join a relative one onto the current directory, which cleans it.
      const requested = word(inst.path);
      const dir = requested.startsWith('/') ? requested : posixPath.resolve(s.config.WorkingDir || '/', requested);
      s.config = { ...s.config, WorkingDir: dir };
      return { kind: 'workdir', ...common, path: posixPath.normalize(dir), patch: { WorkingDir: dir }, history: { created_by: `WORKDIR ${dir}` } };
    }
    case 'USER': {
      noFlags();
      const user = word(inst.user);
      if (user === '') throw new DockerfileError(where, 'USER requires an argument');
      return config({ User: user }, `USER ${user}`);
    }
    case 'CMD': {
      noFlags();
      const cmd = commandArgs(inst.command, s.config);
      s.cmdSet = true;
      return config({ Cmd: cmd }, `CMD ${goQuotedList(cmd)}`);
    }
    case 'ENTRYPOINT': {
      noFlags();
      const entry = commandArgs(inst.command, s.config);
      // An ENTRYPOINT drops the CMD inherited from the base unless this stage set one.
      const patch: Partial<ContainerConfig> = { Entrypoint: entry };
      if (!s.cmdSet) patch.Cmd = null;
      return config(patch, `ENTRYPOINT ${goQuotedList(entry)}`);
    }
    case 'EXPOSE': {
      noFlags();
      const ports: string[] = [];
      for (const raw of inst.ports) {
        // An expanded word may hold several ports (`EXPOSE $PORTS`): BuildKit splits them.
        for (const w of expandWords(raw, s.vars(), s.esc, where)) {
          const p = parsePortSpec(w);
          if (!p) throw new DockerfileError(where, `EXPOSE: invalid port ${JSON.stringify(w)}`);
          ports.push(...p);
        }
      }
      return config({ ExposedPorts: withExposedPorts(s.config, ports) }, `EXPOSE ${goList(ports)}`);
    }
    case 'VOLUME': {
      noFlags();
      const vols: Record<string, Record<string, never>> = { ...(s.config.Volumes ?? {}) };
      const paths = inst.paths.map(word);
      for (const p of paths) {
        if (p.trim() === '') throw new DockerfileError(where, 'VOLUME specified can not be an empty string');
        vols[p] = {};
      }
      return config({ Volumes: vols }, `VOLUME ${goList(paths)}`);
    }
    case 'SHELL': {
      noFlags();
      return config({ Shell: [...inst.shell] }, `SHELL ${goList(inst.shell)}`);
    }
    case 'STOPSIGNAL': {
      noFlags();
      const sig = word(inst.signal);
      if (!isValidSignal(sig)) throw new DockerfileError(where, `STOPSIGNAL: invalid signal ${JSON.stringify(sig)}`);
      return config({ StopSignal: sig }, `STOPSIGNAL ${sig}`);
    }
    case 'MAINTAINER': {
      noFlags();
      // MAINTAINER sets the image's author, outside `config`; commitImage reads it from history.
      return config({}, `MAINTAINER ${inst.name}`);
    }
    case 'ONBUILD': {
      noFlags();
      const triggers = [...(s.config.OnBuild ?? []), inst.trigger];
      return config({ OnBuild: triggers }, `ONBUILD ${inst.trigger}`);
    }
    case 'HEALTHCHECK':
      return planHealthcheck(inst, where, config);
    case 'COPY':
    case 'ADD':
      return planCopy(inst, s, common, where);
    case 'RUN':
      return planRun(inst, s, common, where);
    case 'FROM':
      throw new DockerfileError(where, 'FROM inside a stage'); // parse.ts splits stages at FROM
  }
}

const HEALTHCHECK_DURATIONS = { interval: 'Interval', timeout: 'Timeout', 'start-period': 'StartPeriod', 'start-interval': 'StartInterval' } as const;

function planHealthcheck(
  inst: HealthcheckInstruction,
  where: { file: string; line: number },
  config: (patch: Partial<ContainerConfig>, createdBy: string) => ConfigStep,
): ConfigStep {
  if (!inst.command) {
    if (inst.flags.length) throw new DockerfileError(where, 'HEALTHCHECK NONE takes no flags');
    const health: HealthConfig = { Test: ['NONE'] };
    return config({ Healthcheck: health }, `HEALTHCHECK ${healthHistory(health)}`);
  }
  const health: HealthConfig = {
    Test: inst.command.form === 'exec' ? ['CMD', ...inst.command.args] : ['CMD-SHELL', inst.command.text],
  };
  for (const f of inst.flags) {
    const value = f.value ?? '';
    if (f.name === 'retries') {
      if (!/^-?\d+$/.test(value)) throw new DockerfileError(where, `HEALTHCHECK: --retries must be a whole number, got ${JSON.stringify(value)}`);
      const n = Number(value);
      if (n < 0) throw new DockerfileError(where, '--retries cannot be negative');
      if (n > 0) health.Retries = n;
      continue;
    }
    const field = HEALTHCHECK_DURATIONS[f.name as keyof typeof HEALTHCHECK_DURATIONS];
    if (!field) throw new DockerfileError(where, `HEALTHCHECK: unknown flag --${f.name}`);
    const ns = parseGoDuration(value);
    if (ns === undefined) throw new DockerfileError(where, `HEALTHCHECK: --${f.name}: invalid duration ${JSON.stringify(value)} (use e.g. 30s, 1m30s, 500ms)`);
    // docker: 0 means "the default"; anything else below a millisecond is refused.
    if (ns !== 0 && ns < 1e6) throw new DockerfileError(where, `HEALTHCHECK: --${f.name} cannot be less than 1ms`);
    if (ns !== 0) health[field] = ns;
  }
  return config({ Healthcheck: health }, `HEALTHCHECK ${healthHistory(health)}`);
}

/** `%q` of docker's HealthConfig, as both builders write it: `&{["CMD" "x"] "30s" "0s" "0s" "0s" '\x03'}`. */
function healthHistory(h: HealthConfig): string {
  const d = (ns: number | undefined) => JSON.stringify(formatGoDuration(ns ?? 0));
  return `&{${goQuotedList(h.Test ?? [])} ${d(h.Interval)} ${d(h.Timeout)} ${d(h.StartPeriod)} ${d(h.StartInterval)} ${goQuoteRune(h.Retries ?? 0)}}`;
}

function planCopy(
  inst: CopyInstruction,
  s: StageState,
  common: { number: number; line: number; text: string },
  where: { file: string; line: number },
): CopyStep {
  if (inst.kind === 'ADD' && inst.heredocs.length > 0) throw new DockerfileError(where, 'ADD: heredocs are not supported yet');
  let chown: string | undefined;
  let chmod: number | string | undefined;
  let checksum: string | undefined;
  let keepGitDir: boolean | undefined;
  let chmodText: string | undefined;
  let link = false;
  let parents = false;
  const excludes: string[] = [];
  const seen = new Set<string>();
  const bool = (f: { name: string; value?: string }): boolean => {
    if (f.value === undefined || f.value === 'true') return true;
    if (f.value === 'false') return false;
    throw new DockerfileError(where, `${inst.kind}: --${f.name} must be true or false, got ${JSON.stringify(f.value)}`);
  };
  for (const f of inst.flags) {
    if (f.name !== 'exclude' && seen.has(f.name)) throw new DockerfileError(where, `${inst.kind}: --${f.name} given twice`);
    seen.add(f.name);
    if (f.name === 'chown') {
      chown = expandWord(f.value ?? '', s.vars(), s.esc, where);
      if (chown === '') throw new DockerfileError(where, `${inst.kind}: --chown requires a value`);
    } else if (f.name === 'chmod') {
      chmodText = expandWord(f.value ?? '', s.vars(), s.esc, where);
      chmod = parseChmod(chmodText, inst.kind, where);
    } else if (inst.kind === 'ADD' && f.name === 'checksum') {
      checksum = expandWord(f.value ?? '', s.vars(), s.esc, where);
      if (!/^sha(256:[0-9a-f]{64}|384:[0-9a-f]{96}|512:[0-9a-f]{128})$/.test(checksum)) {
        throw new DockerfileError(where, `ADD: --checksum must be sha256:, sha384: or sha512: and the hex digest, got ${JSON.stringify(checksum)}`);
      }
    } else if (inst.kind === 'ADD' && f.name === 'keep-git-dir') {
      keepGitDir = bool(f);
    } else if (f.name === 'from' && inst.kind === 'COPY') {
      // Resolved with the stage graph (copySource).
    } else if (f.name === 'link') {
      link = bool(f);
    } else if (f.name === 'parents' && inst.kind === 'COPY') {
      parents = bool(f);
    } else if (f.name === 'exclude') {
      const pattern = expandWord(f.value ?? '', s.vars(), s.esc, where);
      if (pattern === '') throw new DockerfileError(where, `${inst.kind}: --exclude requires a pattern`);
      excludes.push(pattern);
    } else {
      // Every flag BuildKit gives COPY and ADD is implemented: anything else is a typo.
      throw new DockerfileError(where, `${inst.kind}: unknown flag --${f.name}`);
    }
  }
  // With --link the files land on an empty filesystem: there is no /etc/passwd to look names up in.
  if (link && chown !== undefined && !/^\d+(:\d+)?$/.test(chown)) {
    throw new DockerfileError(where, `${inst.kind}: --chown=${chown} with --link needs numeric ids (there is no /etc/passwd to look names up in)`);
  }
  const vars = s.vars();
  // A heredoc source is a file named after its delimiter; BuildKit expands its body unless the
  // delimiter was quoted, and copies it after the path sources.
  const inline: InlineFile[] = [];
  const pathWords: string[] = [];
  for (const w of inst.sources) {
    const marker = inst.json ? undefined : parseHeredocWord(w);
    const doc = marker && inst.heredocs.find((h) => h.name === marker.name);
    if (!doc) {
      pathWords.push(w);
      continue;
    }
    let content = doc.content;
    if (!doc.quoted) {
      try {
        content = processHeredocBody(content, vars);
      } catch (err) {
        throw new DockerfileError(where, `${inst.kind} <<${doc.name}: ${(err as Error).message}`, { cause: err });
      }
    }
    inline.push({ name: doc.name, content });
  }
  // docker splits the shell form on blanks (parse.ts did) and expands each word on its own.
  const sources = pathWords.map((w) => expandWord(w, vars, s.esc, where));
  const destWord = expandWord(inst.dest, vars, s.esc, where);
  if (sources.length + inline.length === 0 || destWord === '') throw new DockerfileError(where, `${inst.kind} requires at least two arguments`);
  for (const src of sources) {
    if (inst.kind === 'COPY') {
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(src)) throw new DockerfileError(where, `${inst.kind}: source can't be a URL for COPY`);
      continue;
    }
    const source = classifyAddSource(src);
    if (!source) throw new DockerfileError(where, `ADD: unsupported source URL ${JSON.stringify(src)} (http, https and git sources only)`);
    // git would read a ref or remote starting with `-` as an option (--upload-pack runs a command).
    if (source.kind === 'git' && (source.remote.startsWith('-') || source.ref?.startsWith('-'))) {
      throw new DockerfileError(where, `ADD: invalid git source ${JSON.stringify(src)}`);
    }
    if (checksum !== undefined && source.kind !== 'http') {
      throw new DockerfileError(where, `ADD: --checksum is only supported for http(s) sources, not ${JSON.stringify(src)}`);
    }
  }
  // docker: a relative destination is under WORKDIR; a trailing `/` (or `.`) keeps meaning "directory".
  const workdir = s.config.WorkingDir || '/';
  const wantsDir = destWord.endsWith('/') || destWord === '.' || destWord.endsWith('/.') || destWord === '..' || destWord.endsWith('/..');
  let dest = posixPath.resolve(workdir, destWord);
  if (wantsDir && !dest.endsWith('/')) dest += '/';
  // A wildcard matching several files into a non-directory is caught at copy time, after matching.
  if (sources.length + inline.length > 1 && !dest.endsWith('/')) {
    throw new DockerfileError(where, `When using ${inst.kind} with more than one source file, the destination must be a directory and end with a /`);
  }
  // BuildKit's history text names --parents, --chown and --chmod, never --from or --link.
  const shownFlags = [...(parents ? ['--parents'] : []), ...(chown !== undefined ? [`--chown=${chown}`] : []), ...(chmodText !== undefined ? [`--chmod=${chmodText}`] : [])];
  const history: HistoryEntry = { created_by: `${inst.kind} ${[...shownFlags, ...sources, ...inline.map((f) => `<<${f.name}`), destWord].join(' ')}` };
  const step: CopyStep = { kind: 'copy', ...common, instruction: inst.kind, sources, dest, chown, chmod, checksum, keepGitDir, history };
  if (inline.length > 0) step.inline = inline;
  const from = s.copySources.get(inst);
  if (from) step.from = from;
  if (link) step.link = true;
  if (parents) step.parents = true;
  if (excludes.length > 0) step.excludes = excludes;
  return step;
}

/**
 * `--chmod`: any octal number up to 07777 (BuildKit parses it as base 8, so `7` is 07), or a
 * symbolic mode as chmod(1) writes it (Dockerfile 1.14), checked here and applied per entry.
 */
function parseChmod(v: string, kind: string, where: { file: string; line: number }): number | string {
  if (/^[0-7]+$/.test(v)) {
    const mode = parseInt(v, 8);
    if (mode > 0o7777) throw new DockerfileError(where, `${kind}: --chmod=${v} is more than 07777`);
    return mode;
  }
  const problem = checkSymbolicMode(v);
  if (problem) throw new DockerfileError(where, `${kind}: --chmod must be an octal or symbolic mode, got ${JSON.stringify(v)}: ${problem}`);
  return v;
}

function planRun(inst: RunInstruction, s: StageState, common: { number: number; line: number; text: string }, where: { file: string; line: number }): RunStep {
  let network: RunStep['network'];
  const mounts: RunMount[] = [];
  const workdir = posixPath.normalize(s.config.WorkingDir || '/');
  for (const f of inst.flags) {
    if (f.name === 'network') {
      if (f.value === 'none' || f.value === 'host') network = f.value;
      else if (f.value !== 'default') throw new DockerfileError(where, `RUN: --network must be default, none or host, got ${JSON.stringify(f.value ?? '')}`);
    } else if (f.name === 'mount') {
      mounts.push(
        parseRunMount(f.value ?? '', {
          where,
          workdir,
          expand: (w) => expandWord(w, s.vars(), s.esc, where),
          resolveFrom: (from) => {
            const m = s.mountSources.get(from);
            if (!m) throw new DockerfileError(where, `RUN --mount: from=${from} must be known before the stage is planned (a stage, or an image; stage ARGs cannot name it)`);
            return m;
          },
        }),
      );
    } else if (f.name === 'security') {
      if (f.value === 'insecure') throw new DockerfileError(where, 'RUN: --security=insecure is not supported (strata runs every step sandboxed)');
      if (f.value !== 'sandbox') throw new DockerfileError(where, `RUN: --security must be sandbox or insecure, got ${JSON.stringify(f.value ?? '')}`);
    } else if (f.name === 'device') {
      throw new DockerfileError(where, `RUN: flag --${f.name} is not supported yet`);
    } else {
      throw new DockerfileError(where, `RUN: unknown flag --${f.name}`);
    }
  }
  const args = inst.heredocs.length > 0 ? heredocArgs(inst, s.config, mounts, where) : commandArgs(inst.command, s.config);
  // Build args reach RUN's environment (docker's rule) but ENV of the same name wins.
  const env = [...(s.config.Env ?? [])];
  const envKeys = envMap(s.config.Env);
  for (const [k, v] of s.args) if (v !== undefined && !envKeys.has(k)) env.push(`${k}=${v}`);
  // The proxy args reach RUN without an ARG, and stay out of the history and the image.
  for (const [k, v] of Object.entries(s.buildArgs)) {
    if (PROXY_ARGS.has(k) && !s.args.has(k) && !envKeys.has(k)) env.push(`${k}=${v}`);
  }
  return {
    kind: 'run',
    ...common,
    args,
    env,
    user: s.config.User || undefined,
    workdir,
    network,
    ...(mounts.length > 0 ? { mounts } : {}),
    history: { created_by: `RUN ${runArgsPrefix(s)}${args.join(' ')}` },
  };
}

/**
 * Both builders record the build args a RUN saw, `|N K=V …` before the command, sorted, so
 * a changed build arg shows (and, in their caches, invalidates the step).
 */
function runArgsPrefix(s: StageState): string {
  const envKeys = envMap(s.config.Env);
  const seen = [...s.args].filter(([k, v]) => v !== undefined && !envKeys.has(k) && !PROXY_ARGS.has(k)).map(([k, v]) => `${k}=${v}`);
  return seen.length ? `|${seen.length} ${seen.sort().join(' ')} ` : '';
}

/**
 * The argv of a RUN with heredocs, as BuildKit builds it. `RUN <<EOF` alone runs the body as
 * the script through SHELL, or, with a `#!` line, as a file its interpreter runs. Anything
 * else (`RUN python3 <<EOF`, several heredocs) goes to the shell with the bodies put back,
 * so the shell feeds them and expands unquoted ones at run time.
 */
function heredocArgs(inst: RunInstruction, config: ContainerConfig, mounts: RunMount[], where: { file: string; line: number }): string[] {
  if (inst.command.form !== 'shell') throw new DockerfileError(where, 'RUN: heredocs need the shell form');
  const shell = config.Shell ?? DEFAULT_SHELL;
  const first = inst.heredocs[0]!;
  if (parseHeredocWord(inst.command.text) === undefined) {
    return [...shell, inst.command.text + inst.heredocs.map((h) => `\n${h.content}${h.name}`).join('')];
  }
  if (!first.content.startsWith('#!')) return [...shell, first.content];
  if (first.name.includes('/') || first.name === '.' || first.name === '..') throw new DockerfileError(where, `RUN: heredoc name ${JSON.stringify(first.name)} cannot name a script file`);
  mounts.push({ type: 'inline', target: '/dev/pipes', files: [{ name: first.name, content: first.content, mode: 0o755 }] });
  return [...shell, `/dev/pipes/${first.name}`];
}

/** The argv a CMD/ENTRYPOINT runs: exec form as is; shell form through SHELL. */
function commandArgs(cmd: CommandForm, config: ContainerConfig): string[] {
  if (cmd.form === 'exec') return [...cmd.args];
  return [...(config.Shell ?? DEFAULT_SHELL), cmd.text];
}

/** An ARG's value: --build-arg wins, then the default expanded in scope; undefined when neither. */
function argValue(
  key: string,
  rawDefault: string | undefined,
  vars: Map<string, string>,
  buildArgs: Record<string, string>,
  esc: string,
  where: { file: string; line: number },
): string | undefined {
  if (Object.prototype.hasOwnProperty.call(buildArgs, key)) return buildArgs[key];
  if (rawDefault === undefined) return undefined;
  return expandWord(rawDefault, vars, esc, where);
}

function expandWord(w: string, vars: Map<string, string>, esc: string, where: { file: string; line: number }): string {
  try {
    return processWord(w, vars, esc);
  } catch (err) {
    throw new DockerfileError(where, `expand ${JSON.stringify(w)}: ${(err as Error).message}`, { cause: err });
  }
}

function expandWords(w: string, vars: Map<string, string>, esc: string, where: { file: string; line: number }): string[] {
  try {
    return processWords(w, vars, esc);
  } catch (err) {
    throw new DockerfileError(where, `expand ${JSON.stringify(w)}: ${(err as Error).message}`, { cause: err });
  }
}
