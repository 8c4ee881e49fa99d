// The config-only instructions (ARG ENV LABEL WORKDIR USER CMD ENTRYPOINT EXPOSE VOLUME SHELL
// STOPSIGNAL MAINTAINER ONBUILD HEALTHCHECK): each a change to the image config, with the
// history text docker writes. WORKDIR also makes a step that creates the directory.
import posixPath from 'node:path/posix';
import { DockerfileError } from '../errors.js';
import type { CommandForm, HealthcheckInstruction, Instruction } from '../dockerfile/instructions.js';
import type { ContainerConfig, HealthConfig } from '../image/types.js';
import { argValue } from './args.js';
import { DEFAULT_SHELL, isValidSignal, parsePortSpec, setEnv, withExposedPorts } from './config.js';
// History texts are Go's fmt output in both builders: `%v` of a []string (`[a b]`) for SHELL,
// VOLUME and EXPOSE, `%q` (`["a" "b"]`) for CMD and ENTRYPOINT.
import { formatGoDuration, goList, goQuoteRune, goQuotedList, parseGoDuration } from './gofmt.js';
import { expandWord, expandWords, type StageState } from './scope.js';
import type { ConfigStep, Step } from './types.js';

/** The instructions that change only the config (and WORKDIR). */
export type ConfigInstruction = Exclude<Instruction, { kind: 'COPY' | 'ADD' | 'RUN' | 'FROM' }>;

export function planConfigStep(inst: ConfigInstruction, s: StageState, common: { number: number; line: number; text: string }, where: { file: string; line: number }): Step {
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

/** The argv a CMD/ENTRYPOINT runs: exec form as is; shell form through SHELL. */
export function commandArgs(cmd: CommandForm, config: ContainerConfig): string[] {
  if (cmd.form === 'exec') return [...cmd.args];
  return [...(config.Shell ?? DEFAULT_SHELL), cmd.text];
}

/**
 * A label given on the command line (`build --label K=V`): a LABEL step not in the Dockerfile
 * (line 0), its value taken as written (no expansion).
 */
export function labelStep(config: ContainerConfig, key: string, value: string, number: number): ConfigStep {
  const text = `LABEL ${key}=${value}`;
  return { kind: 'config', number, line: 0, text, patch: { Labels: { ...(config.Labels ?? {}), [key]: value } }, history: { created_by: text, empty_layer: true } };
}
