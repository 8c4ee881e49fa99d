// RUN steps: flags (--mount, --network, --security), the argv (shell, exec, heredocs), the
// environment build args give it, the history text.
import posixPath from 'node:path/posix';
import { DockerfileError } from '../errors.js';
import type { RunInstruction } from '../dockerfile/instructions.js';
import { parseHeredocWord } from '../dockerfile/parse.js';
import type { ContainerConfig } from '../image/types.js';
import { PROXY_ARGS, runArgsPrefix } from './args.js';
import { DEFAULT_SHELL, envMap } from './config.js';
import { commandArgs } from './configSteps.js';
import { parseRunMount } from './mounts.js';
import { expandWord, type StageState } from './scope.js';
import type { RunMount, RunStep } from './types.js';

export function planRun(inst: RunInstruction, s: StageState, common: { number: number; line: number; text: string }, where: { file: string; line: number }): RunStep {
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
  if (first.name.includes('/') || first.name === '.' || first.name === '..')
    throw new DockerfileError(where, `RUN: heredoc name ${JSON.stringify(first.name)} cannot name a script file`);
  mounts.push({ type: 'inline', target: '/dev/pipes', files: [{ name: first.name, content: first.content, mode: 0o755 }] });
  return [...shell, `/dev/pipes/${first.name}`];
}
