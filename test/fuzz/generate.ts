// Dockerfiles for fuzzing the parser and planner, each a pure function of (seed, index): a
// case that fails can be made again alone. Half mutate a corpus (the differential fixtures and
// the parser's and planner's test inputs): lines and bytes inserted, deleted, duplicated,
// continuation and escape characters, huge repeats. The other half are generated: directives,
// stages, instructions with real and bogus flags, words nesting `${}` forms, heredocs.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { INSTRUCTION_NAMES } from '../../engine/dockerfile/suggest.js';

/** mulberry32: small, fast, seedable. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The PRNG of one case: the run's seed and the case's index, mixed. */
export function caseRandom(seed: number, index: number): () => number {
  return prng(Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35));
}

class Pick {
  /** Tame cases keep to well-formed instructions, so planning goes deep; wild ones do not. */
  tame = false;
  constructor(readonly r: () => number) {}
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  chance(p: number): boolean {
    return this.r() < p;
  }
  of<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

// ---- the corpus --------------------------------------------------------------------------

/** Single-quoted string literals holding a newline, from a test's source: its Dockerfiles. */
function literalsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/'((?:[^'\\\n]|\\.)*)'/g)) {
    const body = m[1]!;
    if (!body.includes('\\n')) continue;
    try {
      out.push(JSON.parse(`"${body.replace(/\\'/g, "'").replace(/"/g, '\\"')}"`) as string);
    } catch {
      // an escape JSON does not know (\x..): not needed
    }
  }
  return out;
}

/** Every Dockerfile of the corpus; `repo` is the repository root. */
export function loadCorpus(repo: string): string[] {
  const corpus: string[] = [];
  const fixtures = path.join(repo, 'test', 'fixtures', 'differential');
  for (const dir of readdirSync(fixtures)) {
    try {
      corpus.push(readFileSync(path.join(fixtures, dir, 'Dockerfile'), 'utf8'));
    } catch {
      // a fixture without a Dockerfile of that name
    }
  }
  for (const t of ['parse.test.ts', 'planner.test.ts', 'expand.test.ts']) corpus.push(...literalsOf(path.join(repo, 'test', 'unit', t)));
  return corpus;
}

// ---- generated pieces --------------------------------------------------------------------

const NAMES = ['A', 'B', 'PATH', 'HOME', 'V', 'X1', '_', 'TARGETARCH', 'BUILDPLATFORM', 'http_proxy', 'EMPTY', '1', '@', 'UNSET'];
const SPECIALS = [
  '\\',
  '`',
  '$',
  '{',
  '}',
  '"',
  "'",
  '<<',
  '-',
  '\n',
  '\r',
  '\t',
  '#',
  '=',
  '[',
  ']',
  '/',
  '*',
  '?',
  '%',
  ':',
  '+',
  '@',
  ',',
  ' ',
  '\u00a0',
  'é',
  '한',
  '\u2028',
  '\0',
  '\\\n',
  '${',
  '$$',
];
const OPS = [':-', '-', ':+', '+', '?', ':?', '#', '##', '%', '%%', '/', '//', ':', '=', ':='];
// Every real keyword, and a few that are not (case variants, an unknown one).
const KEYWORDS = [...INSTRUCTION_NAMES, 'from', 'Run', 'BOGUS'];
const FLAGS: Record<string, string[]> = {
  FROM: ['--platform=linux/amd64', '--platform=$BUILDPLATFORM', '--platform=windows/arm', '--bogus'],
  RUN: [
    '--network=none',
    '--network=host',
    '--network=x',
    '--mount=type=cache,target=/c',
    '--mount=type=bind,from=0,target=/b',
    '--mount=type=secret,id=s',
    '--mount=type=tmpfs,target=/t,size=1',
    '--mount=type=ssh',
    '--mount=from=${A},target=/x',
    '--security=sandbox',
    '--device=x',
    '--x',
  ],
  COPY: [
    '--from=0',
    '--from=build',
    '--from=${A}',
    '--chown=1:1',
    '--chown=$A',
    '--chmod=755',
    '--chmod=u+x',
    '--chmod=9',
    '--link',
    '--link=false',
    '--parents',
    '--exclude=*.md',
    '--checksum=sha256:0',
  ],
  ADD: ['--checksum=sha256:' + '0'.repeat(64), '--keep-git-dir', '--chown=a', '--link', '--unpack', '--exclude=x'],
  HEALTHCHECK: ['--interval=1s', '--timeout=0', '--retries=-1', '--start-period=1h', '--x=1'],
};

function word(p: Pick, depth = 0): string {
  // 9 (a pattern of many stars) one time in 40.
  const roll = p.chance(0.025) ? 9 : p.tame ? p.of([0, 0, 0, 1, 3, 4, 5, 8]) : p.of([0, 1, 2, 3, 4, 5, 6, 7, 8, 10].slice(0, depth > 3 ? 3 : 10));
  switch (roll) {
    case 0:
      return p.of(['a', 'b/c', '/x', '.', '..', '*', 'a*b?', 'x:1', '0', 'é', p.tame ? 'z' : '']);
    case 1:
      return '$' + p.of(NAMES);
    case 2:
      return p.of(SPECIALS);
    case 3:
      return `\${${p.of(NAMES)}}`;
    case 4:
    case 5: {
      const op = p.tame ? p.of([':-', '-', ':+', '+', '#', '##', '%', '%%', '/', '//']) : p.of(OPS);
      const inner = word(p, depth + 1) + (p.chance(0.3) ? word(p, depth + 1) : '');
      if (op === '/' || op === '//') return `\${${p.of(NAMES)}${op}${inner}/${word(p, depth + 1)}}`;
      return `\${${p.of(NAMES)}${op}${inner}}` + (p.chance(0.05) ? '' : '');
    }
    case 6:
      return `"${word(p, depth + 1)} ${word(p, depth + 1)}"`;
    case 7:
      return `'${word(p, depth + 1)}'`;
    case 8:
      return word(p, depth + 1) + word(p, depth + 1);
    case 9: {
      // A pattern with many stars, which backtracks exponentially in a naive matcher.
      const stars = `*${p.of(['a', '?', '\\*'])}`.repeat(5 + p.int(30));
      return p.chance(0.5) ? `\${${p.of(['A', 'B', 'V'])}/${stars}x/y}` : `\${${p.of(['A', 'B', 'V'])}${p.of(['#', '##', '%', '%%'])}${stars}x}`;
    }
    default:
      // An unterminated form, a stray brace.
      return p.of(['${', '${A', '${A:-', '${A/', '"', "'", '}', '${}', '${:-x}', '\\']);
  }
}

function words(p: Pick, n: number): string {
  if (p.tame && n === 0) n = 1;
  return Array.from({ length: n }, () => word(p)).join(p.of([' ', ' ', '  ', '\t']));
}

function heredoc(p: Pick): { marker: string; body: string } {
  const name = p.of(['EOF', 'X', 'end', 'E O F']);
  const quote = p.of(['', '', '"', "'"]);
  const dash = p.chance(0.3) ? '-' : '';
  const body = Array.from({ length: p.int(4) }, () => (p.chance(0.3) ? '\t' : '') + words(p, 1 + p.int(3))).join('\n');
  const end = p.tame || p.chance(0.9) ? `\n${dash && p.chance(0.2) ? '\t' : ''}${name}` : '';
  return { marker: `<<${dash}${quote}${name}${quote}`, body: `\n${body}${end}` };
}

const TAME_KEYWORDS = [
  'RUN',
  'RUN',
  'COPY',
  'ENV',
  'ARG',
  'LABEL',
  'WORKDIR',
  'USER',
  'CMD',
  'ENTRYPOINT',
  'EXPOSE',
  'VOLUME',
  'ONBUILD',
  'HEALTHCHECK',
  'SHELL',
  'STOPSIGNAL',
  'ADD',
];

const MOUNT_KEYS = [
  'type',
  'target',
  'dst',
  'destination',
  'source',
  'src',
  'from',
  'id',
  'sharing',
  'mode',
  'uid',
  'gid',
  'size',
  'required',
  'env',
  'rw',
  'readwrite',
  'ro',
  'readonly',
  'bogus',
];
const MOUNT_VALUES = [
  'bind',
  'cache',
  'tmpfs',
  'secret',
  'ssh',
  '/x',
  'x',
  '0',
  '1',
  '0755',
  '-1',
  '99999999999',
  'true',
  'false',
  'shared',
  'locked',
  'private',
  '$A',
  '${A:-/c}',
  '',
  '..',
  '/',
  'base',
  's0',
  '1k',
  '10m',
];

/** `--mount=k=v,…` with keys and values drawn from what BuildKit knows and some it does not. */
function mountFlag(p: Pick): string {
  const parts = Array.from({ length: 1 + p.int(5) }, () => (p.chance(0.9) ? `${p.of(MOUNT_KEYS)}=${p.chance(0.8) ? p.of(MOUNT_VALUES) : word(p)}` : p.of(MOUNT_KEYS)));
  if (p.chance(0.7)) parts.unshift(`type=${p.of(['bind', 'cache', 'tmpfs', 'secret'])}`);
  return `--mount=${parts.join(p.chance(0.05) ? ';' : ',')}`;
}

/** A flag with a random value, for the instructions that take it. */
function randomFlag(p: Pick, up: string): string {
  if (up === 'RUN' && p.chance(0.6)) return mountFlag(p);
  const names =
    up === 'COPY' || up === 'ADD'
      ? ['chmod', 'chown', 'from', 'exclude', 'link', 'parents', 'checksum', 'keep-git-dir']
      : up === 'HEALTHCHECK'
        ? ['interval', 'timeout', 'retries', 'start-period', 'start-interval']
        : ['platform', 'network', 'security'];
  const values = ['755', '0', '7777', '17777', 'u+x', 'a=rX,g-w', 'u=g', 'x+y', '1:1', 'root', '$A', '', '1s', '-1', '1ms', '0.5s', 'linux/amd64', '*.md', '[', 'true'];
  return `--${p.of(names)}${p.chance(0.9) ? '=' + (p.chance(0.8) ? p.of(values) : word(p)) : ''}`;
}

function instruction(p: Pick): string {
  const kw = p.tame ? p.of(TAME_KEYWORDS) : p.of(KEYWORDS);
  const up = kw.toUpperCase();
  const fixed = (FLAGS[up] ?? ['--x']).filter(() => p.chance(p.tame ? 0.04 : 0.15));
  const drawn = Array.from({ length: p.chance(p.tame ? 0.1 : 0.3) ? 1 + p.int(2) : 0 }, () => randomFlag(p, up));
  const flags = [...fixed, ...drawn].join(' ');
  const head = flags ? `${kw} ${flags}` : kw;
  switch (up) {
    case 'FROM':
      return `${head} ${p.of(['scratch', 'base', 'missing', '$A', '${A:-base}', 'build', '0', 'base AS build', 'base as x', 'scratch AS 1x'])}`;
    case 'SHELL':
      if (p.tame) return `SHELL ${JSON.stringify(['/bin/sh', ...Array.from({ length: p.int(2) }, () => word(p))])}`;
      return p.chance(0.5) ? `${head} ${JSON.stringify(Array.from({ length: p.int(3) }, () => word(p)))}` : `${head} ${words(p, p.int(3))}`;
    case 'HEALTHCHECK':
      if (p.tame) return `${head} ${p.of(['NONE', 'CMD true', 'CMD ["x"]'])}`;
      return `${head} ${p.of(['NONE', 'CMD', 'CMD true', 'FOO'])} ${words(p, p.int(2))}`;
    case 'STOPSIGNAL':
      if (p.tame) return `STOPSIGNAL ${p.of(['SIGTERM', '9', '$A', 'SIGKILL'])}`;
      return `${head} ${words(p, p.int(3))}`;
    case 'COPY':
    case 'ADD':
      if (p.tame && !p.chance(0.25)) return `${head} ${words(p, 1 + p.int(3))} ${p.of(['/dst/', '/d', '.', '$A/'])}`;
      return copyOrRun(p, up, head);
    case 'RUN':
      return copyOrRun(p, up, head);
    case 'ONBUILD':
      return `${head} ${p.chance(0.1) && !p.tame ? 'ONBUILD ' : ''}${p.tame ? p.of(['RUN x', 'ENV A=1', 'COPY a b']) : instruction(p)}`;
    case 'CMD':
    case 'ENTRYPOINT':
    case 'VOLUME':
      return p.chance(0.5) ? `${head} ${JSON.stringify(Array.from({ length: p.tame ? 1 + p.int(2) : p.int(3) }, () => word(p)))}` : `${head} ${words(p, p.int(3))}`;
    case 'ENV':
    case 'LABEL':
    case 'ARG':
      return `${head} ${Array.from({ length: 1 + p.int(3) }, () => `${p.tame || p.chance(0.8) ? p.of(NAMES.slice(0, 10)) : word(p)}${p.tame || p.chance(0.8) ? '=' + word(p) : ''}`).join(' ')}`;
    case 'EXPOSE':
      // A whole range is 65,536 ports (a fine plan, but slow to make): rare.
      return `${head} ${p.chance(0.02) ? '0-65535' : p.of(['80', '80/tcp', '1-3', '$A', p.tame ? '53/udp' : 'x'])}`;
    default:
      return `${head} ${words(p, p.int(3))}`;
  }
}

/** RUN, COPY or ADD: a heredoc, the exec form, or words. */
function copyOrRun(p: Pick, up: string, head: string): string {
  if (p.chance(0.25)) {
    const h = heredoc(p);
    return `${head} ${up === 'RUN' ? p.of(['', 'cat ', 'sh -c x ']) : ''}${h.marker}${up === 'RUN' ? '' : ' /dst'}${h.body}`;
  }
  if (p.chance(0.2)) return `${head} ${JSON.stringify(Array.from({ length: 1 + p.int(3) }, () => word(p)))}`;
  return `${head} ${words(p, 1 + p.int(4))}`;
}

function generated(p: Pick): string {
  const lines: string[] = [];
  if (p.chance(0.2)) lines.push(p.of(['# escape=`', '# escape=\\', '# syntax=docker/dockerfile:1', p.tame ? '# hello' : '# escape=x', '#check=skip=all']));
  for (let i = p.int(3); i > 0; i--) lines.push(`ARG ${p.of(NAMES)}${p.chance(0.7) ? '=' + word(p) : ''}`);
  // Long values for the patterns to work on.
  if (p.chance(0.2)) lines.push(`ARG ${p.of(['A', 'B', 'V'])}=${'a'.repeat(20 + p.int(60))}`);
  const stages = 1 + p.int(3);
  for (let s = 0; s < stages; s++) {
    lines.push(`FROM ${p.of(['scratch', 'base', p.tame ? 'base' : '$A', 'base', 's0', '0'])}${p.chance(0.5) ? ` AS s${s}` : ''}`);
    // A long value in scope, for patterns to work on.
    if (p.chance(0.3)) lines.push(`ARG ${p.of(['A', 'B', 'V'])}=${'a'.repeat(20 + p.int(60))}`);
    for (let i = p.int(8); i > 0; i--) {
      let line = instruction(p);
      if (p.chance(0.1)) line = line.replace(' ', p.of([' \\\n  ', ' `\n', ' \\ \n#c\n ']));
      lines.push(line);
    }
  }
  return lines.join(p.of(['\n', '\n', '\r\n'])) + (p.chance(0.9) ? '\n' : '');
}

// ---- mutations ---------------------------------------------------------------------------

function mutate(p: Pick, text: string, corpus: readonly string[]): string {
  let lines = text.split('\n');
  for (let n = 1 + p.int(5); n > 0; n--) {
    const at = p.int(lines.length + 1);
    switch (p.int(11)) {
      case 0:
        lines.splice(at, 1);
        break;
      case 1:
        lines.splice(at, 0, lines[p.int(lines.length)] ?? '');
        break;
      case 2: {
        const other = p.of(corpus).split('\n');
        lines.splice(at, 0, other[p.int(other.length)] ?? '');
        break;
      }
      case 3:
        lines.splice(at, 0, instruction(p));
        break;
      case 4: {
        // Bytes: insert, delete or replace a few characters anywhere.
        const joined = lines.join('\n');
        const pos = p.int(joined.length + 1);
        const cut = p.int(4);
        lines = (joined.slice(0, pos) + (p.chance(0.7) ? p.of(SPECIALS) : '') + joined.slice(pos + cut)).split('\n');
        break;
      }
      case 5:
        if (lines[at] !== undefined) lines[at] += p.of(['\\', '`', ' \\', '\\ ', '\\\\']);
        break;
      case 6:
        lines.splice(at, 0, p.of(['# escape=`', '# escape=\\', '#', '', '  ', 'EOF', '\t-EOF']));
        break;
      case 7: {
        // A word grown into nested expansions.
        const i = p.int(lines.length);
        lines[i] = `${lines[i] ?? ''} ${word(p)}`;
        break;
      }
      case 8: {
        // A huge repeat of a line or of a piece of one, kept to a few hundred KB.
        const src = lines[p.int(lines.length)] ?? 'RUN x';
        const times = p.chance(0.5) ? 2 + p.int(50) : 100 + p.int(3000);
        if (p.chance(0.5)) lines.splice(at, 0, ...Array.from({ length: Math.min(times, Math.floor(300_000 / (src.length + 1))) }, () => src));
        else {
          const piece = src.slice(p.int(src.length + 1)) || '$A';
          lines.splice(at, 0, `${p.of(['RUN', 'ENV A=', 'LABEL x=', 'ARG A='])} ${piece.repeat(Math.min(times, Math.floor(300_000 / (piece.length + 1))))}`);
        }
        break;
      }
      case 9:
        [lines[at], lines[0]] = [lines[0] ?? '', lines[at] ?? ''];
        break;
      default:
        lines.splice(at, 0, ...generated(p).split('\n'));
    }
  }
  return lines.join('\n');
}

export interface FuzzCase {
  dockerfile: string;
  buildArgs: Record<string, string>;
  target?: string;
}

/** Case `index` of the run seeded `seed`. */
export function fuzzCase(seed: number, index: number, corpus: readonly string[]): FuzzCase {
  const p = new Pick(caseRandom(seed, index));
  p.tame = p.chance(0.4);
  const dockerfile = corpus.length > 0 && p.chance(0.5) ? mutate(p, p.of(corpus), corpus) : generated(p);
  const buildArgs: Record<string, string> = {};
  for (let i = p.int(3); i > 0; i--) buildArgs[p.of(NAMES)] = p.chance(0.1) ? 'a'.repeat(30 + p.int(100)) : word(p);
  const target = p.chance(0.1) ? p.of(['s0', 's1', 'build', 'nope', 'S0']) : undefined;
  return { dockerfile, buildArgs, target };
}
