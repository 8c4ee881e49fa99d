// Dockerfile text → our Instruction IR (instructions.ts), by docker's own parsing rules.
//
// The rules are those of docker's parser (moby/buildkit frontend/dockerfile/parser/parser.go,
// line_parsers.go, split_command.go, directives.go) and its instruction checks
// (frontend/dockerfile/instructions/parse.go); error texts are docker's.
//
// dockerfile-ast is deliberately not used. It is an editor library whose line handling differs
// from docker's in the places a build cannot afford: it takes `\\` at the end of a line for a
// continuation, misses the heredocs `<< EOF` and `3<<EOF` (their bodies come back as
// instructions) yet accepts `<<- EOF`, breaks lines at a lone CR, still applies `# escape=`
// after an unknown directive, accepts duplicate and invalid directives, keeps comment lines
// inside continuations and drops JSON escapes. Correcting all of that would leave nothing of its
// output in use, so this file scans the lines itself, as docker does.

import { DockerfileError } from '../errors.js';
import { suggestInstruction } from './suggest.js';

import { checkDockerfileSize, checkInstructionCount } from './limits.js';
import { processWords, splitWordsRaw } from './expand.js';
import type { CommandForm, Flag, Heredoc, Instruction, KeyValue, ParsedDockerfile, SourceRange } from './instructions.js';

/**
 * Parses a Dockerfile into instructions with raw (unexpanded) words. Pure and deterministic.
 * Throws DockerfileError (1-based line of the instruction) for everything docker's parser
 * rejects; flags are split but not checked against the instruction (the planner does that).
 */
export function parseDockerfile(text: string, file = 'Dockerfile'): ParsedDockerfile {
  checkDockerfileSize(text, file);
  const lines = splitLines(text);
  const { directives, escapeChar } = readDirectives(lines, file);
  // Like docker, find every syntax error of the file (scanning, JSON, heredocs) before any
  // per-instruction rule is checked.
  const nodes = scanInstructions(lines, escapeChar, file);
  if (nodes.length === 0) throw new DockerfileError({ file, line: 1 }, 'file with no instructions');

  const instructions: Instruction[] = [];
  let inStage = false;
  for (const node of nodes) {
    const instruction = atLine(file, node.range.startLine, () => toInstruction(node, escapeChar));
    // Only ARGs may come before the first FROM: they parameterize the FROM lines.
    if (!inStage && instruction.kind !== 'ARG' && instruction.kind !== 'FROM') {
      throw new DockerfileError({ file, line: node.range.startLine }, `${instruction.kind} before the first FROM: no build stage in current context`);
    }
    if (instruction.kind === 'FROM') inStage = true;
    instructions.push(instruction);
  }
  if (!inStage) throw new DockerfileError({ file, line: 1 }, 'dockerfile contains no stages to build');
  return { file, escapeChar, directives, instructions };
}

/** One instruction as docker's line scanner yields it, before the per-instruction rules. */
interface RawInstruction {
  range: SourceRange;
  /** Continuation lines joined (escape and line break removed), comment lines dropped. */
  line: string;
  /** As written. */
  keyword: string;
  /** Everything after the keyword, flags included, trimmed. */
  rest: string;
  flags: Flag[];
  /** `rest` without the flags, trimmed. */
  args: string;
  heredocs: RawHeredoc[];
}

interface RawHeredoc {
  name: string;
  /** Body as read: lines with their `\r`, each ending in "\n", tabs not yet stripped. */
  body: string;
  quoted: boolean;
  stripTabs: boolean;
}

const HEREDOC_INSTRUCTIONS = new Set(['RUN', 'COPY', 'ADD']);
const JSON_INSTRUCTIONS = new Set(['RUN', 'CMD', 'ENTRYPOINT', 'SHELL', 'COPY', 'ADD', 'VOLUME']);

// Docker splits arguments on ASCII blanks only (its reWhitespace), but trims with Unicode spaces.
const BLANKS = /[\t\v\f\r ]+/;
const SPACE = /^\p{White_Space}$/u; // Go's unicode.IsSpace; all such characters are in the BMP
const DIRECTIVE = /^([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*$/;
const KNOWN_DIRECTIVES = new Set(['syntax', 'escape', 'check']);
const HEREDOC_WORD = /^(\d*)<<(-?)[\t\n\f\r ]*([^<]*)$/;
const STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;

// Lines end at "\n" only (a lone CR is text); a final newline does not start another line.
function splitLines(text: string): string[] {
  const body = text.startsWith('\ufeff') ? text.slice(1) : text;
  if (body === '') return [];
  const lines = body.split('\n');
  if (body.endsWith('\n')) lines.pop();
  return lines;
}

// Loops rather than /\s+$/: a regex anchored at the end backtracks quadratically on long blanks.
function trimNewline(line: string): string {
  let end = line.length;
  while (end > 0 && (line[end - 1] === '\r' || line[end - 1] === '\n')) end--;
  return line.slice(0, end);
}

function isSpace(ch: string): boolean {
  return SPACE.test(ch);
}

function trimLeft(text: string): string {
  let start = 0;
  while (start < text.length && isSpace(text[start])) start++;
  return text.slice(start);
}

function trimSpace(text: string): string {
  const left = trimLeft(text);
  let end = left.length;
  while (end > 0 && isSpace(left[end - 1])) end--;
  return left.slice(0, end);
}

function isComment(line: string): boolean {
  return trimLeft(line).startsWith('#');
}

// Parser directives are `# name=value` lines at the very top. The first line that is not a
// known directive (a blank line, another comment, an instruction) ends them for good.
function readDirectives(lines: string[], file: string): { directives: Record<string, string>; escapeChar: '\\' | '`' } {
  const directives: Record<string, string> = {};
  let escapeChar: '\\' | '`' = '\\';
  for (let i = 0; i < lines.length; i++) {
    const line = trimLeft(trimNewline(lines[i]));
    if (!line.startsWith('#')) break;
    const m = DIRECTIVE.exec(trimLeft(line.slice(1)));
    if (m === null) break;
    const name = m[1].toLowerCase();
    if (!KNOWN_DIRECTIVES.has(name)) break;
    const value = m[2];
    const location = { file, line: i + 1 };
    if (Object.hasOwn(directives, name)) {
      throw new DockerfileError(location, `only one ${name} parser directive can be used`);
    }
    if (name === 'escape') {
      if (value !== '\\' && value !== '`') {
        throw new DockerfileError(location, `invalid escape token '${value}' does not match \` or \\`);
      }
      escapeChar = value;
    }
    directives[name] = value;
  }
  return { directives, escapeChar };
}

function scanInstructions(lines: string[], escapeChar: string, file: string): RawInstruction[] {
  // The escape character continues a line when it ends it (blanks may follow), unless it is
  // itself escaped; a line holding only the escape character continues too. Like docker, an
  // escaped escape followed by a continuation (`\\\`) is not recognised.
  const e = escapeChar === '\\' ? '\\\\' : escapeChar;
  const continuation = new RegExp(`([^${e}])${e}[ \\t]*$|^${e}[ \\t]*$`);
  const cut = (line: string): { text: string; continues: boolean } =>
    continuation.test(line) ? { text: line.replace(continuation, '$1'), continues: true } : { text: line, continues: false };

  const nodes: RawInstruction[] = [];
  let stages = 0;
  let i = 0;
  while (i < lines.length) {
    const startLine = i + 1;
    const first = trimLeft(trimNewline(lines[i++]));
    if (first === '' || first.startsWith('#')) continue;
    let { text: line, continues } = cut(first);
    while (continues && i < lines.length) {
      const next = trimNewline(lines[i++]);
      // Docker drops comment lines and blank lines inside a continuation (blank ones with a
      // deprecation warning); the comment's own trailing escape character does not count.
      if (isComment(next) || trimLeft(next) === '') continue;
      const part = cut(next);
      line += part.text;
      continues = part.continues;
    }

    const node = atLine(file, startLine, () => {
      const { keyword, rest } = splitKeyword(line);
      const { flags, args } = splitFlags(rest, escapeChar);
      checkSyntax(keyword, args, escapeChar);
      return { keyword, rest, flags, args };
    });
    if (node.keyword.toUpperCase() === 'FROM') stages++;
    checkInstructionCount(nodes.length + 1, stages, file, startLine);

    const heredocs: RawHeredoc[] = [];
    const markers = atLine(file, startLine, () => (line.includes('<<') && takesHeredocs(node.keyword, node.args, escapeChar) ? heredocMarkers(line) : []));
    for (const marker of markers) {
      let body = '';
      let terminated = false;
      while (i < lines.length) {
        const raw = lines[i++];
        const candidate = marker.stripTabs ? trimNewline(raw).replace(/^\t+/, '') : trimNewline(raw);
        if (candidate === marker.name) {
          terminated = true;
          break;
        }
        // Kept byte for byte, CR included, as docker does for CRLF files.
        body += raw + '\n';
      }
      if (!terminated) throw new DockerfileError({ file, line: startLine }, `unterminated heredoc ${marker.name}`);
      heredocs.push({ ...marker, body });
    }

    nodes.push({ ...node, range: { startLine, endLine: i }, line, heredocs });
  }
  return nodes;
}

// Runs fn, turning any error it throws into a DockerfileError at the given line.
function atLine<T>(file: string, line: number, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof DockerfileError) throw err;
    throw new DockerfileError({ file, line }, err instanceof Error ? err.message : String(err), { cause: err });
  }
}

function splitKeyword(line: string): { keyword: string; rest: string } {
  const trimmed = trimSpace(line);
  const m = BLANKS.exec(trimmed);
  if (m === null) return { keyword: trimmed, rest: '' };
  return { keyword: trimmed.slice(0, m.index), rest: trimmed.slice(m.index + m[0].length) };
}

// Leading `--name[=value]` words are flags, for every instruction. Quotes and escapes inside a
// flag are resolved (`--from="a b"` has value `a b`); a bare `--` ends the flags and is dropped.
function splitFlags(rest: string, escapeChar: string): { flags: Flag[]; args: string } {
  const chars = Array.from(rest);
  const words: string[] = [];
  let pos = 0;
  for (;;) {
    while (pos < chars.length && isSpace(chars[pos])) pos++;
    if (pos === chars.length || chars[pos] !== '-' || chars[pos + 1] !== '-') break;
    let word = '';
    let quote: string | undefined;
    for (; pos < chars.length; pos++) {
      let ch = chars[pos];
      if (quote === undefined && isSpace(ch)) break;
      if (quote === undefined && (ch === '"' || ch === "'")) {
        quote = ch;
        continue;
      }
      if (ch === quote) {
        quote = undefined;
        continue;
      }
      if (ch === escapeChar) {
        if (pos + 1 === chars.length) continue;
        ch = chars[++pos];
      }
      word += ch;
    }
    if (word === '--') break;
    words.push(word);
  }
  const flags = words.map((word): Flag => {
    const eq = word.indexOf('=');
    return eq < 0 ? { name: word.slice(2) } : { name: word.slice(2, eq), value: word.slice(eq + 1) };
  });
  return { flags, args: trimSpace(chars.slice(pos).join('')) };
}

// The errors docker's parser raises while building its syntax tree, before instruction rules.
function checkSyntax(keyword: string, args: string, escapeChar: string): void {
  const kw = keyword.toUpperCase();
  if (JSON_INSTRUCTIONS.has(kw)) jsonArray(args);
  else if (kw === 'HEALTHCHECK') jsonArray(splitFirstWord(args).rest);
  else if (kw === 'ENV' || kw === 'LABEL') nameValuePairs(kw, args, escapeChar);
  else if (kw === 'ONBUILD') {
    const trigger = splitKeyword(args);
    // `ONBUILD ONBUILD …` is refused with the instruction; recursing into a line of thousands
    // of them would overflow the stack first.
    if (trigger.keyword.toUpperCase() !== 'ONBUILD') checkSyntax(trigger.keyword, splitFlags(trigger.rest, escapeChar).args, escapeChar);
  }
}

// RUN, COPY and ADD in shell form (also as an ONBUILD trigger) may carry heredocs.
function takesHeredocs(keyword: string, args: string, escapeChar: string): boolean {
  let kw = keyword.toUpperCase();
  if (kw === 'ONBUILD') {
    const trigger = splitKeyword(args);
    kw = trigger.keyword.toUpperCase();
    args = splitFlags(trigger.rest, escapeChar).args;
  }
  return HEREDOC_INSTRUCTIONS.has(kw) && jsonArray(args) === undefined;
}

type HeredocMarker = Omit<RawHeredoc, 'body'>;

// The heredocs a line opens, in order. Docker reads the line's words with `\` as escape
// character whatever the escape directive says, and keeps `<< EOF` together as one word.
// A line it cannot lex (an unclosed quote) opens no heredoc at all: docker ignores that error.
function heredocMarkers(line: string): HeredocMarker[] {
  if (!quotesClosed(line)) return [];
  const words = splitWordsRaw(line, '\\');
  const markers: HeredocMarker[] = [];
  for (let i = 0; i < words.length; i++) {
    let word = words[i];
    if (/^\d*<<$/.test(word) && i + 1 < words.length) word += ' ' + words[++i];
    const marker = heredocMarker(word);
    if (marker !== undefined) markers.push(marker);
  }
  return markers;
}

function heredocMarker(word: string): HeredocMarker | undefined {
  const m = HEREDOC_WORD.exec(word);
  if (m === null || m[3] === '') return undefined;
  const names = processWords(literalDollars(m[3]), {}, '\\');
  if (names.length !== 1) return undefined;
  return { name: names[0], quoted: hasQuoting(m[3]), stripTabs: m[2] === '-' };
}

function quotesClosed(line: string): boolean {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (ch === '\\' && quote !== "'") i++;
    else if (ch === quote) quote = undefined;
    else if (quote === undefined && (ch === '"' || ch === "'")) quote = ch;
  }
  return quote === undefined;
}

// Docker reads the delimiter with no variables set and unset ones kept as written, so `<<$X`
// is delimited by `$X`: escape every `$` that quotes would not already keep literal.
function literalDollars(word: string): string {
  let out = '';
  let quote: string | undefined;
  for (let i = 0; i < word.length; i++) {
    const ch = word[i];
    if (ch === '\\' && quote !== "'" && i + 1 < word.length) {
      out += ch + word[++i];
      continue;
    }
    if (ch === quote) quote = undefined;
    else if (quote === undefined && (ch === '"' || ch === "'")) quote = ch;
    out += ch === '$' && quote !== "'" ? '\\$' : ch;
  }
  return out;
}

/** The heredoc a word opens (`<<EOF`, `<<-"EOF"`), or undefined when it opens none. */
export function parseHeredocWord(word: string): { name: string; quoted: boolean; stripTabs: boolean } | undefined {
  try {
    return heredocMarker(word);
  } catch {
    return undefined;
  }
}

// Docker ignores errors here: a word that does not lex is simply not a heredoc.
function isHeredocWord(word: string): boolean {
  try {
    return heredocMarker(word) !== undefined;
  } catch {
    return false;
  }
}

// Any quoting of the delimiter (`"EOF"`, `'EOF'`, `E"O"F`) turns expansion of the body off;
// an escaped quote (`\"EOF`) is only a character of the name.
function hasQuoting(word: string): boolean {
  for (let i = 0; i < word.length; i++) {
    if (word[i] === '\\') i++;
    else if (word[i] === '"' || word[i] === "'") return true;
  }
  return false;
}

// Docker's exec form: the arguments parse as a JSON array. Anything else (not starting with
// `[`, or invalid JSON) is shell form, except an array holding a non-string, which is an error.
function jsonArray(args: string): string[] | undefined {
  const text = trimLeft(args);
  if (!text.startsWith('[')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value)) return undefined;
  if (!value.every((v): v is string => typeof v === 'string')) {
    throw new Error('when using JSON array syntax, arrays must be comprised of strings only');
  }
  return value;
}

function commandForm(args: string): CommandForm {
  const json = jsonArray(args);
  return json === undefined ? { form: 'shell', text: args } : { form: 'exec', args: json };
}

function splitBlanks(args: string): string[] {
  return args === '' ? [] : args.split(BLANKS);
}

// HEALTHCHECK's type word (CMD or NONE) ends at the first blank.
function splitFirstWord(args: string): { word: string; rest: string } {
  const m = /[\t\n\v\f\r ]/.exec(args);
  if (m === null) return { word: args, rest: '' };
  return { word: args.slice(0, m.index), rest: trimLeft(args.slice(m.index)) };
}

// ENV and LABEL: `KEY value with spaces` (legacy, chosen when the first word has no `=`) or
// `k=v k2="v 2"`, values raw with their quotes.
function nameValuePairs(kw: string, args: string, escapeChar: string): KeyValue[] {
  const words = splitWordsRaw(args, escapeChar);
  if (words.length === 0) return [];
  if (!words[0].includes('=')) {
    const m = BLANKS.exec(args);
    if (m === null) throw new Error(`${kw} must have two arguments`);
    return [{ key: args.slice(0, m.index), value: args.slice(m.index + m[0].length) }];
  }
  return words.map((word) => {
    const eq = word.indexOf('=');
    if (eq < 0) {
      throw new Error(`Syntax error - can't find = in ${JSON.stringify(word)}. Must be of the form: name=value`);
    }
    return { key: word.slice(0, eq), value: word.slice(eq + 1) };
  });
}

function toInstruction(node: RawInstruction, escapeChar: string): Instruction {
  const kw = node.keyword.toUpperCase();
  const common = { range: node.range, flags: node.flags, text: node.rest === '' ? kw : `${kw} ${node.rest}` };
  const { args } = node;
  const heredocs = () => node.heredocs.map(toHeredoc);

  switch (kw) {
    case 'FROM': {
      const words = splitBlanks(args);
      if (words.length === 1) return { kind: 'FROM', ...common, image: words[0] };
      if (words.length !== 3 || words[1].toLowerCase() !== 'as') {
        throw new Error('FROM requires either one or three arguments');
      }
      // Stage names are case-insensitive: docker lower-cases them before checking.
      const stageName = words[2].toLowerCase();
      if (!STAGE_NAME.test(stageName)) {
        throw new Error(`invalid name for build stage: ${JSON.stringify(words[2])}, name can't start with a number or contain symbols`);
      }
      return { kind: 'FROM', ...common, image: words[0], stageName };
    }
    case 'ARG': {
      const words = splitWordsRaw(args, escapeChar);
      if (words.length === 0) throw new Error('ARG requires at least one argument');
      const pairs = words.map((word): KeyValue => {
        const eq = word.indexOf('=');
        if (eq < 0) return { key: word };
        if (eq === 0) throw new Error('ARG names can not be blank');
        return { key: word.slice(0, eq), value: word.slice(eq + 1) };
      });
      return { kind: 'ARG', ...common, args: pairs };
    }
    case 'ENV':
    case 'LABEL': {
      const pairs = nameValuePairs(kw, args, escapeChar);
      if (pairs.length === 0) throw new Error(`${kw} requires at least one argument`);
      if (pairs.some((p) => p.key === '')) throw new Error(`${kw} names can not be blank`);
      return { kind: kw, ...common, pairs };
    }
    case 'RUN':
      return { kind: 'RUN', ...common, command: commandForm(args), heredocs: heredocs() };
    case 'CMD':
    case 'ENTRYPOINT':
      return { kind: kw, ...common, command: commandForm(args) };
    case 'COPY':
    case 'ADD': {
      const json = jsonArray(args);
      const words = json ?? splitBlanks(args);
      if (words.length < 2) {
        throw new Error(`${kw} requires at least two arguments, but only one was provided. Destination could not be determined`);
      }
      const dest = words[words.length - 1];
      if (isHeredocWord(dest)) throw new Error(`${kw} cannot accept a heredoc as a destination`);
      // Heredoc sources stay in `sources` as written (`<<EOF`); `heredocs` holds their bodies.
      return { kind: kw, ...common, sources: words.slice(0, -1), dest, json: json !== undefined, heredocs: heredocs() };
    }
    case 'WORKDIR':
    case 'USER':
    case 'STOPSIGNAL':
    case 'MAINTAINER': {
      // The whole rest of the line is the one argument, inner blanks included.
      if (args === '') throw new Error(`${kw} requires exactly one argument`);
      if (kw === 'WORKDIR') return { kind: kw, ...common, path: args };
      if (kw === 'USER') return { kind: kw, ...common, user: args };
      if (kw === 'STOPSIGNAL') return { kind: kw, ...common, signal: args };
      return { kind: kw, ...common, name: args };
    }
    case 'EXPOSE': {
      const ports = splitBlanks(args);
      if (ports.length === 0) throw new Error('EXPOSE requires at least one argument');
      return { kind: 'EXPOSE', ...common, ports };
    }
    case 'VOLUME': {
      const json = jsonArray(args);
      const words = json ?? splitBlanks(args);
      if (words.length === 0) throw new Error('VOLUME requires at least one argument');
      const paths = words.map(trimSpace);
      if (paths.includes('')) throw new Error('VOLUME specified can not be an empty string');
      return { kind: 'VOLUME', ...common, paths, json: json !== undefined };
    }
    case 'SHELL': {
      const json = jsonArray(args);
      if (args === '' || json?.length === 0) throw new Error('SHELL requires at least one argument');
      if (json === undefined) throw new Error('SHELL requires the arguments to be in JSON form');
      return { kind: 'SHELL', ...common, shell: json };
    }
    case 'HEALTHCHECK': {
      if (args === '') throw new Error('HEALTHCHECK requires at least one argument');
      const { word, rest } = splitFirstWord(args);
      const type = word.toUpperCase();
      const command = commandForm(rest);
      const empty = command.form === 'shell' ? command.text === '' : command.args.length === 0;
      if (type === 'NONE') {
        if (!empty) throw new Error('HEALTHCHECK NONE takes no arguments');
        return { kind: 'HEALTHCHECK', ...common };
      }
      if (type !== 'CMD') throw new Error(`Unknown type ${JSON.stringify(type)} in HEALTHCHECK (try CMD)`);
      if (empty) throw new Error('Missing command after HEALTHCHECK CMD');
      return { kind: 'HEALTHCHECK', ...common, command };
    }
    case 'ONBUILD': {
      if (args === '') throw new Error('ONBUILD requires at least one argument');
      const trigger = splitKeyword(args).keyword.toUpperCase();
      if (trigger === 'ONBUILD') throw new Error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
      if (trigger === 'FROM' || trigger === 'MAINTAINER') {
        throw new Error(`${trigger} isn't allowed as an ONBUILD trigger`);
      }
      // Stored as docker stores it: the line without ONBUILD, heredoc bodies and delimiters
      // appended, so the child build parses the trigger like any other line.
      let expression = node.line.replace(/^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*/i, '');
      for (const h of node.heredocs) expression += `\n${h.body}${h.name}`;
      return { kind: 'ONBUILD', ...common, trigger: expression };
    }
    default: {
      const near = suggestInstruction(node.keyword);
      throw new Error(`unknown instruction: ${node.keyword}${near ? ` (did you mean ${near}?)` : ''}`);
    }
  }
}

function toHeredoc(h: RawHeredoc): Heredoc {
  const content = h.stripTabs
    ? h.body
        .split('\n')
        .map((l) => l.replace(/^\t+/, ''))
        .join('\n')
    : h.body;
  return { name: h.name, content, quoted: h.quoted, stripTabs: h.stripTabs };
}
