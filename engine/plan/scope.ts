// What is in scope while a stage's instructions are planned (ARGs, ENV, the resolved --from
// sources), and expansion of a word in that scope with the instruction's line in errors.
import { DockerfileError } from '../errors.js';
import { processWord, processWords } from '../dockerfile/expand.js';
import type { Instruction } from '../dockerfile/instructions.js';
import type { ContainerConfig } from '../image/types.js';
import { envMap } from './config.js';
import type { CopySource, MountSource } from './types.js';

/** The Dockerfile and line an error names. */
export type Where = { file: string; line: number };

/** What is in scope while a stage's instructions are planned. */
export class StageState {
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

export function expandWord(w: string, vars: Map<string, string>, esc: string, where: { file: string; line: number }): string {
  try {
    return processWord(w, vars, esc);
  } catch (err) {
    throw new DockerfileError(where, `expand ${JSON.stringify(w)}: ${(err as Error).message}`, { cause: err });
  }
}

export function expandWords(w: string, vars: Map<string, string>, esc: string, where: { file: string; line: number }): string[] {
  try {
    return processWords(w, vars, esc);
  } catch (err) {
    throw new DockerfileError(where, `expand ${JSON.stringify(w)}: ${(err as Error).message}`, { cause: err });
  }
}
