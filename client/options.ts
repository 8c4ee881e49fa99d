// The flags `strata build` and `strata schedule create` share, declared once, and what they
// become in a build request; the parsers of flag values both use (durations, build args, tags).
import { InvalidArgumentError, Option } from 'commander';
import type { ParsedDockerfile } from '../engine/dockerfile/instructions.js';
import { normalizeReference } from '../engine/image/reference.js';
import { isRepositoryName, registryReference } from '../engine/registry/reference.js';
import { ENTITLEMENTS } from '../engine/runtime/entitlements.js';
import type { NetworkMode } from '../engine/runtime/network.js';
import type { BuildRequest } from '../workflows/types.js';
import { UsageError } from './errors.js';

/** `strata build --retry-window` when neither the flag nor STRATA_RETRY_WINDOW says otherwise. */
export const DEFAULT_RETRY_WINDOW = '24h';

/** Commander's accumulator for repeatable flags. */
export const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** The shared flags as commander hands them over. */
export interface BuildFlags {
  file?: string;
  tag: string[];
  buildArg: string[];
  target?: string;
  network?: string;
  /** Entitlements the build asks for (`--allow network.host`). */
  allow?: string[];
  stepTimeout?: string;
  push?: boolean;
  /** False under `--no-cache` (commander's negated flag). */
  cache?: boolean;
  /** `--no-cache-filter STAGE` values (commander names the negated flag's values so). */
  cacheFilter?: string[];
  /** `--label K=V` (repeatable). */
  label?: string[];
  /** Ask the registry for each image the Dockerfile names, even when the store has it. */
  pull?: boolean;
  /** `--cache-from type=registry,ref=REGISTRY/REPO` (repeatable). */
  cacheFrom?: string[];
}

/** The shared flags, new objects at each call (commander owns an Option once added). */
export function buildFlagOptions(): Option[] {
  return [
    new Option('-f, --file <file>', 'the Dockerfile (default: Dockerfile in the context); strata build takes - for stdin'),
    new Option('-t, --tag <name:tag>', 'name the image (repeatable)').argParser(collect).default([]),
    new Option('--build-arg <key=value>', 'set a build-time variable (repeatable)').argParser(collect).default([]),
    new Option('--target <stage>', 'build this stage and what it needs'),
    new Option(
      '--network <mode>',
      "network for RUN steps without --network: default (a namespace of the step's own, with egress through slirp4netns, without the host's loopback or addresses), none (loopback only; ADD fetches nothing) or host (needs --allow network.host)",
    ),
    new Option(
      '--allow <entitlement>',
      "grant the build an entitlement: network.host (RUN --network=host, ADD from this host's own addresses; a worker may refuse it) (repeatable)",
    )
      .argParser(collect)
      .default([]),
    new Option('--step-timeout <duration>', 'fail a RUN step that runs longer, e.g. 90s, 10m'),
    new Option('--pull', 'always ask the registry for the newest manifest of each image the Dockerfile names (else only images the store lacks are pulled)'),
    new Option(
      '--push',
      "push each -t name to its registry after the build, e.g. -t localhost:5000/app:1: strata build pushes from this client with your credentials; a detached build and a schedule's runs push from a worker started with --allow-push, with the worker's credentials",
    ),
    new Option('--no-cache', 'use no instruction cache entry: every step runs (and records its result for later builds)'),
    new Option('--no-cache-filter <stage>', 'this stage (name, or index from 0) uses no cache entry; other stages do (repeatable)').argParser(collect).default([]),
    new Option(
      '--cache-from <spec>',
      'also use the cache entries a --cache-to exported: type=registry,ref=REGISTRY/REPO (or just REGISTRY/REPO); asked on a miss of the local cache, read by the worker with its credentials, and used by this build only (repeatable, at most 8)',
    )
      .argParser((v: string, previous: string[]) => [...previous, cacheSpecArg('--cache-from')(v)])
      .default([]),
    new Option('--label <key=value>', 'set a label on the image, after the last instruction, as a LABEL would (repeatable)').argParser(collect).default([]),
  ];
}

/** The part of a build request the shared flags give; `command` names the command in errors. */
export type BuildSettings = Pick<
  BuildRequest,
  'buildArgs' | 'target' | 'tags' | 'sourceDateEpoch' | 'network' | 'entitlements' | 'stepTimeoutMs' | 'push' | 'pull' | 'labels' | 'noCache' | 'noCacheFilter' | 'cacheFrom'
>;

export function buildSettings(flags: BuildFlags, command: string): BuildSettings {
  const tags = flags.tag.map((t) => normalizeTag(t));
  if (flags.push) checkPushTags(tags, command);
  return {
    buildArgs: parseBuildArgs(flags.buildArg),
    target: flags.target,
    tags,
    sourceDateEpoch: sourceDateEpoch(),
    network: parseNetwork(flags.network),
    entitlements: parseEntitlements(flags.allow ?? [], '--allow'),
    stepTimeoutMs: flags.stepTimeout ? parseDuration(flags.stepTimeout) : undefined,
    ...(flags.push ? { push: true } : {}),
    ...((flags.label ?? []).length > 0 ? { labels: parseLabels(flags.label!) } : {}),
    ...(flags.pull ? { pull: true } : {}),
    ...(flags.cache === false ? { noCache: true } : {}),
    ...(flags.cacheFilter?.length ? { noCacheFilter: [...new Set(flags.cacheFilter)] } : {}),
    ...cacheFromSetting(flags.cacheFrom ?? [], command),
  };
}

/** Repositories one build may read cache entries from (the worker checks the bound again: activities/validate.ts). */
export const MAX_CACHE_FROM = 8;

function cacheFromSetting(specs: string[], command: string): Pick<BuildRequest, 'cacheFrom'> {
  const repos = [...new Set(specs.map((s) => parseCacheSpec(s, '--cache-from').ref))];
  if (repos.length > MAX_CACHE_FROM) throw new UsageError(`${command}: --cache-from: at most ${MAX_CACHE_FROM} repositories, got ${repos.length}`);
  return repos.length > 0 ? { cacheFrom: repos } : {};
}

/** Checks a --cache-from/--cache-to value as commander parses it: a bad one is a usage error (exit 125) naming the flag. */
export function cacheSpecArg(flag: string): (value: string) => string {
  return (value) => {
    try {
      parseCacheSpec(value, flag);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
    return value;
  };
}

/**
 * BuildKit's cache import/export spec, of which strata knows `type=registry,ref=REGISTRY/REPO`
 * (a bare `REGISTRY/REPO` too). `mode=max` and `mode=min` are both taken: strata exports the
 * entry of every filesystem step of every stage the build ran anyway.
 */
export function parseCacheSpec(spec: string, flag: string): { ref: string } {
  const fail = (detail: string): never => {
    throw new UsageError(`${flag} ${spec}: ${detail}`);
  };
  const fields = new Map<string, string>();
  if (!spec.includes('=')) fields.set('ref', spec).set('type', 'registry');
  else
    for (const part of spec.split(',')) {
      const i = part.indexOf('=');
      if (i <= 0) fail(`expected KEY=VALUE, got ${JSON.stringify(part)}`);
      fields.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
    }
  const type = fields.get('type');
  if (type !== 'registry') fail(`unsupported type ${JSON.stringify(type ?? '')}: strata knows only type=registry,ref=REGISTRY/REPO`);
  for (const [k, v] of fields) {
    if (k === 'mode' && v !== 'min' && v !== 'max') fail(`mode must be min or max, got ${JSON.stringify(v)}`);
    if (k !== 'type' && k !== 'ref' && k !== 'mode') fail(`unknown field ${JSON.stringify(k)} (known: type, ref, mode)`);
  }
  const ref = fields.get('ref') ?? fail('needs ref=REGISTRY/REPO');
  if (!isRepositoryName(ref)) fail(`ref must be REGISTRY/REPOSITORY without tag or digest, got ${JSON.stringify(ref)}`);
  try {
    registryReference(`${ref}:latest`);
  } catch (e) {
    fail((e as Error).message);
  }
  return { ref };
}

/**
 * `--no-cache-filter` names stages of the Dockerfile (`FROM … AS NAME`, or an index from 0):
 * a typo would otherwise leave the cache on silently.
 */
export function checkCacheFilter(filter: string[] | undefined, df: ParsedDockerfile, command: string): void {
  const froms = df.instructions.filter((i) => i.kind === 'FROM');
  for (const f of filter ?? []) {
    const byIndex = /^\d+$/.test(f) && Number(f) < froms.length;
    if (!byIndex && !froms.some((i) => i.stageName?.toLowerCase() === f.toLowerCase())) {
      throw new UsageError(`${command}: --no-cache-filter ${f}: no such stage (FROM … AS ${f}, or an index from 0 to ${froms.length - 1})`);
    }
  }
}

/** `K=V`; a bare `K` is a label with an empty value (docker's). */
export function parseLabels(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const i = item.indexOf('=');
    const key = i < 0 ? item : item.slice(0, i);
    if (key === '') throw new UsageError(`--label: invalid argument ${JSON.stringify(item)} (expected KEY=VALUE)`);
    out[key] = i < 0 ? '' : item.slice(i + 1);
  }
  return out;
}

/** NAME[:TAG] as the store keeps it (docker.io/library/… spelled out, `:latest` added). */
export function normalizeTag(name: string, flag = '-t'): string {
  try {
    return normalizeReference(name);
  } catch (e) {
    throw new UsageError(`${flag} ${name}: ${(e as Error).message}`);
  }
}

/** `--push` pushes the tags: without one there is nowhere to push, and a bad name fails now. */
export function checkPushTags(tags: string[], command: string): void {
  if (tags.length === 0) throw new UsageError(`${command}: --push needs a name to push to: -t REGISTRY/REPO:TAG`);
  for (const t of tags) {
    if (t.includes('@')) throw new UsageError(`${command}: --push: -t ${t} is a digest reference; give a tag`);
    registryReference(t);
  }
}

/** `K=V` sets; a bare `K` takes the value from the environment, or is skipped (docker). */
export function parseBuildArgs(items: string[], env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const i = item.indexOf('=');
    if (i === 0) throw new UsageError(`--build-arg: invalid argument ${JSON.stringify(item)}`);
    if (i > 0) out[item.slice(0, i)] = item.slice(i + 1);
    else if (env[item] !== undefined) out[item] = env[item]!;
  }
  return out;
}

/** `90`, `90s`, `5m`, `1h30m` → milliseconds. */
export function parseDuration(s: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$/.exec(s.trim());
  if (!m || s.trim() === '') throw new UsageError(`invalid duration ${JSON.stringify(s)} (use e.g. 90s, 5m, 1h)`);
  const [, h = '0', min = '0', sec = '0'] = m;
  const ms = ((Number(h) * 60 + Number(min)) * 60 + Number(sec)) * 1000;
  if (ms <= 0) throw new UsageError(`invalid duration ${JSON.stringify(s)}: must be positive`);
  return ms;
}

export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`SOURCE_DATE_EPOCH must be a whole number of seconds, got ${JSON.stringify(v)}`);
  return Number(v);
}

function parseNetwork(v: string | undefined): NetworkMode | undefined {
  if (v === undefined) return undefined;
  if (v === 'default' || v === 'host' || v === 'none') return v;
  throw new UsageError(`--network: expected default, host or none, got ${JSON.stringify(v)}`);
}

/** `--allow` values: BuildKit's entitlement names that strata knows. */
export function parseEntitlements(values: string[], flag: string): string[] | undefined {
  for (const v of values) {
    if (!(ENTITLEMENTS as readonly string[]).includes(v)) throw new UsageError(`${flag}: unknown entitlement ${JSON.stringify(v)} (known: ${ENTITLEMENTS.join(', ')})`);
  }
  return values.length > 0 ? [...new Set(values)] : undefined;
}
