// COPY and ADD steps: flags, sources (paths, heredocs, URLs, git), destination, history text.
import posixPath from 'node:path/posix';
import { DockerfileError } from '../errors.js';
import { processHeredocBody } from '../dockerfile/expand.js';
import type { CopyInstruction } from '../dockerfile/instructions.js';
import { parseHeredocWord } from '../dockerfile/parse.js';
import type { HistoryEntry } from '../image/types.js';
import { classifyAddSource } from './addSource.js';
import { checkSymbolicMode } from './mode.js';
import { expandWord, type StageState } from './scope.js';
import type { CopyStep, InlineFile } from './types.js';

export function planCopy(inst: CopyInstruction, s: StageState, common: { number: number; line: number; text: string }, where: { file: string; line: number }): CopyStep {
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
