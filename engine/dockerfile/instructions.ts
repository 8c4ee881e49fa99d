// Our own plain-data form of a Dockerfile: what parse.ts makes of dockerfile-ast's tree.
// Words are kept raw (quotes and `$` intact): the planner expands them with expand.ts in
// exactly the instructions where docker does, against the environment of that point.

/** Where an instruction stands in its file (1-based lines). */
export interface SourceRange {
  startLine: number;
  endLine: number;
}

/** A flag as written: `--from=build` → { name: 'from', value: 'build' }; `--link` → value undefined. */
export interface Flag {
  name: string;
  value?: string;
}

/** RUN/CMD/ENTRYPOINT/HEALTHCHECK command: shell form (raw text) or exec form (JSON array). */
export type CommandForm = { form: 'shell'; text: string } | { form: 'exec'; args: string[] };

/** A heredoc attached to RUN/COPY/ADD: `<<EOF` … `EOF`. */
export interface Heredoc {
  /** The delimiter word, without quotes or `-`. */
  name: string;
  /** Body lines joined with "\n", ending with "\n"; leading tabs already removed for `<<-`. */
  content: string;
  /** The delimiter was quoted, so the body is not expanded. */
  quoted: boolean;
  /** `<<-`: leading tabs stripped. */
  stripTabs: boolean;
}

/** A `key=value` pair of ENV, LABEL or ARG, raw. */
export interface KeyValue {
  key: string;
  /** Raw value word(s), quotes intact; undefined for `ARG NAME` without default. */
  value?: string;
}

interface Common {
  range: SourceRange;
  flags: Flag[];
  /**
   * The instruction as one line: keyword upper-cased, continuations joined, comment
   * lines dropped. Used for `Step N/M : …` and history text.
   */
  text: string;
}

export interface FromInstruction extends Common {
  kind: 'FROM';
  /** Raw image word (may hold `$VAR` from global ARGs). */
  image: string;
  stageName?: string;
}
export interface ArgInstruction extends Common {
  kind: 'ARG';
  args: KeyValue[];
}
export interface EnvInstruction extends Common {
  kind: 'ENV';
  pairs: KeyValue[];
}
export interface LabelInstruction extends Common {
  kind: 'LABEL';
  pairs: KeyValue[];
}
export interface RunInstruction extends Common {
  kind: 'RUN';
  command: CommandForm;
  heredocs: Heredoc[];
}
export interface CopyInstruction extends Common {
  kind: 'COPY' | 'ADD';
  /** Raw source words (shell form) or JSON strings (exec form). */
  sources: string[];
  dest: string;
  /** True when written as a JSON array: words are not split, quotes are literal. */
  json: boolean;
  heredocs: Heredoc[];
}
export interface WorkdirInstruction extends Common {
  kind: 'WORKDIR';
  path: string;
}
export interface UserInstruction extends Common {
  kind: 'USER';
  user: string;
}
export interface CmdInstruction extends Common {
  kind: 'CMD' | 'ENTRYPOINT';
  command: CommandForm;
}
export interface ExposeInstruction extends Common {
  kind: 'EXPOSE';
  /** Raw words, e.g. `80`, `53/udp`, `$PORT`. */
  ports: string[];
}
export interface VolumeInstruction extends Common {
  kind: 'VOLUME';
  paths: string[];
  json: boolean;
}
export interface ShellInstruction extends Common {
  kind: 'SHELL';
  shell: string[];
}
export interface StopSignalInstruction extends Common {
  kind: 'STOPSIGNAL';
  signal: string;
}
export interface HealthcheckInstruction extends Common {
  kind: 'HEALTHCHECK';
  /** undefined for `HEALTHCHECK NONE`. */
  command?: CommandForm;
}
export interface OnbuildInstruction extends Common {
  kind: 'ONBUILD';
  /** The trigger instruction's text, as it will be stored in the config. */
  trigger: string;
}
export interface MaintainerInstruction extends Common {
  kind: 'MAINTAINER';
  name: string;
}

export type Instruction =
  | FromInstruction
  | ArgInstruction
  | EnvInstruction
  | LabelInstruction
  | RunInstruction
  | CopyInstruction
  | WorkdirInstruction
  | UserInstruction
  | CmdInstruction
  | ExposeInstruction
  | VolumeInstruction
  | ShellInstruction
  | StopSignalInstruction
  | HealthcheckInstruction
  | OnbuildInstruction
  | MaintainerInstruction;

export type InstructionKind = Instruction['kind'];

/** A parsed Dockerfile: its directives and instructions, in order. */
export interface ParsedDockerfile {
  /** The file name errors use, e.g. `Dockerfile`. */
  file: string;
  escapeChar: '\\' | '`';
  directives: Record<string, string>;
  instructions: Instruction[];
}
