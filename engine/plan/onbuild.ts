// ONBUILD: a base's triggers become instructions of the child stage, run right after its FROM.
import { DockerfileError } from '../errors.js';
import { parseDockerfile } from '../dockerfile/parse.js';
import type { Instruction, ParsedDockerfile } from '../dockerfile/instructions.js';
import type { RawStage } from './stages.js';
import { checkOnbuildTriggers } from '../dockerfile/limits.js';

/** A base's ONBUILD triggers as instructions, placed at the stage's FROM line. */
export function triggerInstructions(triggers: string[], raw: RawStage, file: string): Instruction[] {
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
