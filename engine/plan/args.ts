// Build args: the global ARG scope, an ARG's value, docker's predefined args, the unused-args
// warning and the `|N K=V` prefix RUN's history carries.
import { DockerfileError } from '../errors.js';
import type { ParsedDockerfile } from '../dockerfile/instructions.js';
import { platformArgs, type Platform } from '../image/platform.js';
import { envMap } from './config.js';
import { expandWord, type StageState, type Where } from './scope.js';

/** docker's predefined build args: usable without ARG, never recorded, never "unused". */
export const PROXY_ARGS = new Set(['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy']);

/**
 * Global ARGs (before the first FROM) are visible to FROM lines only, and to stages that
 * re-declare them. Returns them, with the platform args, and the index of the first FROM.
 */
export function planGlobalArgs(
  df: ParsedDockerfile,
  buildArgs: Record<string, string>,
  platform: Platform,
  usedArgs: Set<string>,
  at: (line: number) => Where,
): { globalArgs: Map<string, string>; firstFrom: number } {
  const esc = df.escapeChar;
  const globalArgs = new Map<string, string>(Object.entries(platformArgs(platform)));
  let i = 0;
  for (; i < df.instructions.length && df.instructions[i]!.kind !== 'FROM'; i++) {
    const inst = df.instructions[i]!;
    if (inst.kind !== 'ARG') throw new DockerfileError(at(inst.range.startLine), `${inst.kind} cannot come before the first FROM`);
    for (const a of inst.args) {
      const value = argValue(a.key, a.value, globalArgs, buildArgs, esc, at(inst.range.startLine));
      if (value !== undefined) globalArgs.set(a.key, value);
      if (a.key in buildArgs) usedArgs.add(a.key);
    }
  }
  return { globalArgs, firstFrom: i };
}

/** docker's warning for build args no ARG consumed (the predefined ones never count). */
export function unusedArgsWarnings(buildArgs: Record<string, string>, usedArgs: Set<string>): string[] {
  const unused = Object.keys(buildArgs).filter((k) => !usedArgs.has(k) && !PROXY_ARGS.has(k));
  return unused.length > 0 ? [`One or more build-args [${unused.sort().join(' ')}] were not consumed`] : [];
}

/** An ARG's value: --build-arg wins, then the default expanded in scope; undefined when neither. */
export function argValue(
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

/**
 * Both builders record the build args a RUN saw, `|N K=V …` before the command, sorted, so
 * a changed build arg shows (and, in their caches, invalidates the step).
 */
export function runArgsPrefix(s: StageState): string {
  const envKeys = envMap(s.config.Env);
  const seen = [...s.args].filter(([k, v]) => v !== undefined && !envKeys.has(k) && !PROXY_ARGS.has(k)).map(([k, v]) => `${k}=${v}`);
  return seen.length ? `|${seen.length} ${seen.sort().join(' ')} ` : '';
}
