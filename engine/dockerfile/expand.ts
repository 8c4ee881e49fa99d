// Docker's Dockerfile word lexer: expands $VAR and ${VAR…}, removes quotes and escapes, splits words.
// The behaviour is BuildKit's shell lexer (frontend/dockerfile/shell/lex.go), which both docker
// builders use; test/unit/expand.test.ts pins it down row by row in the style of its envVarTest.

import { compileGlob, findGlob, MatchBudget, reverseGlob } from './glob.js';
import { MAX_EXPANDED_LENGTH } from './limits.js';

/** Variables visible to an expansion: a Map, or a plain object (own properties only). */
export type WordEnv = ReadonlyMap<string, string> | Readonly<Record<string, string>>;

/**
 * Expands one word as docker does for WORKDIR, USER, COPY paths, ENV values…: variables
 * replaced, quotes and escape characters removed, whitespace kept. An unset variable is "".
 * Throws an Error naming the word for an unterminated quote or `${`, a bad substitution, or a
 * `${V?msg}` / `${V:?msg}` whose variable is unset (or empty).
 */
export function processWord(word: string, env: WordEnv, escapeChar = '\\'): string {
  return lex(word, env, escapeChar).text;
}

/**
 * Expands like processWord, then splits on whitespace that was neither quoted nor escaped and
 * did not come from a quoted expansion (`$V` holding spaces does split, `"$V"` does not).
 * As in BuildKit, empty words are dropped even when written as `""`.
 */
export function processWords(text: string, env: WordEnv, escapeChar = '\\'): string[] {
  return lex(text, env, escapeChar).words;
}

/**
 * Expands a COPY heredoc body whose delimiter was not quoted, as BuildKit does: variables
 * and escapes as in a word, but quotes are plain text. The escape character is always `\`.
 */
export function processHeredocBody(body: string, env: WordEnv): string {
  return lex(body, env, '\\', true).text;
}

/**
 * Splits on unquoted, unescaped whitespace and changes nothing else: quotes, escape characters
 * and `$` stay in the words (docker's parseWords, used for `ENV a=1 b="x y"` and ARG).
 * Never throws: an unterminated quote simply runs to the end of the text.
 */
export function splitWordsRaw(text: string, escapeChar = '\\'): string[] {
  const chars = Array.from(text);
  const words: string[] = [];
  let current = '';
  let quote: string | undefined;
  for (let i = 0; i < chars.length; i++) {
    let ch = chars[i];
    if (quote === undefined && isSpace(ch)) {
      if (current !== '') words.push(current);
      current = '';
      continue;
    }
    if (quote === undefined && (ch === '"' || ch === "'")) {
      quote = ch;
    } else if (quote !== undefined && ch === quote) {
      quote = undefined;
    } else if (ch === escapeChar && quote !== "'") {
      // An escape character at the very end has nothing to escape: docker drops it.
      if (i + 1 === chars.length) continue;
      current += ch;
      ch = chars[++i];
    }
    current += ch;
  }
  if (current !== '') words.push(current);
  return words;
}

const WHITE_SPACE = /^\p{White_Space}$/u; // Go's unicode.IsSpace
const LETTER = /^\p{L}$/u;
const DIGIT = /^\p{Nd}$/u;
/** A word whose expansion grows past the limit is refused (ARG doubling would otherwise fill the heap). */
function checkSize(length: number): void {
  if (length > MAX_EXPANDED_LENGTH) throw new Error(`the expansion is longer than ${MAX_EXPANDED_LENGTH} characters`);
}

/** A word quoted for a message, cut short: the word may be most of the Dockerfile. */
function quoteShort(text: string): string {
  return JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text);
}

// POSIX special parameters: never set in a Dockerfile, but `$@` must read as one name, not `$`+`@`.
const SPECIAL_PARAMS = new Set(['@', '*', '#', '?', '-', '$', '!', '0']);

function isSpace(ch: string): boolean {
  return WHITE_SPACE.test(ch);
}

function isNameChar(ch: string): boolean {
  return LETTER.test(ch) || DIGIT.test(ch) || ch === '_';
}

function lex(source: string, env: WordEnv, escapeChar: string, quotesAreText = false): Scanned {
  const lookup =
    env instanceof Map
      ? (name: string) => env.get(name)
      : (name: string) =>
          // Own properties only, so `$constructor` is not Object.prototype.constructor.
          Object.prototype.hasOwnProperty.call(env, name) ? (env as Record<string, string>)[name] : undefined;
  try {
    return new Lexer(source, lookup, escapeChar, quotesAreText).scan(undefined, false);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new Error(`failed to process ${quoteShort(source)}: ${detail}`, { cause: err });
  }
}

interface Scanned {
  text: string;
  words: string[];
}

/** Collects words: text from expansions splits on whitespace, quoted or escaped text never does. */
class WordCollector {
  private readonly words: string[] = [];
  private current = '';

  addSplitting(text: string): void {
    for (const ch of text) {
      if (isSpace(ch)) this.flush();
      else this.current += ch;
    }
  }

  addLiteral(text: string): void {
    this.current += text;
  }

  finish(): string[] {
    this.flush();
    return this.words;
  }

  private flush(): void {
    if (this.current !== '') this.words.push(this.current);
    this.current = '';
  }
}

class Lexer {
  // Code points, so a name or an escape never splits a surrogate pair.
  private readonly chars: string[];
  private pos = 0;
  private readonly lookup: (name: string) => string | undefined;
  private readonly escape: string;
  private readonly quotesAreText: boolean;
  private readonly budget = new MatchBudget();

  constructor(source: string, lookup: (name: string) => string | undefined, escape: string, quotesAreText: boolean) {
    this.chars = Array.from(source);
    this.lookup = lookup;
    this.escape = escape;
    this.quotesAreText = quotesAreText;
  }

  /**
   * Reads up to `stop` (consumed) or the end. `rawEscapes` keeps escape characters in the
   * result, for `${V#pattern}`-style words whose pattern syntax gives `\*` its own meaning.
   * Each call collects its own words: BuildKit shares one buffer between nested calls, so
   * its ProcessWords turns `a${X:-b}c` into `bc`; here it is `abc`, as a shell would say.
   */
  scan(stop: string | undefined, rawEscapes: boolean): Scanned {
    let text = '';
    const words = new WordCollector();
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) break;
      if (ch === stop) {
        this.pos++;
        return { text, words: words.finish() };
      }
      if (ch === '$') {
        const value = this.dollar();
        text += value;
        checkSize(text.length);
        words.addSplitting(value);
        continue;
      }
      if (((ch === "'" || ch === '"') && !this.quotesAreText) || ch === '<') {
        const value = ch === "'" ? this.singleQuoted() : ch === '"' ? this.doubleQuoted(rawEscapes) : this.angle();
        text += value;
        words.addLiteral(value);
        continue;
      }
      this.pos++;
      if (ch === this.escape) {
        if (rawEscapes) {
          text += ch;
          words.addLiteral(ch);
        }
        const escaped = this.next();
        if (escaped === undefined) break; // a trailing escape character is dropped
        text += escaped;
        words.addLiteral(escaped);
        continue;
      }
      text += ch;
      words.addSplitting(ch);
    }
    if (stop !== undefined) throw new Error(`unexpected end of statement while looking for matching ${stop}`);
    return { text, words: words.finish() };
  }

  private peek(): string | undefined {
    return this.chars[this.pos];
  }

  private next(): string | undefined {
    const ch = this.chars[this.pos];
    if (ch !== undefined) this.pos++;
    return ch;
  }

  private atEnd(): boolean {
    return this.pos >= this.chars.length;
  }

  // Single quotes keep everything literally, even the escape character: `'a\'` is `a\`.
  private singleQuoted(): string {
    this.pos++;
    let text = '';
    for (;;) {
      const ch = this.next();
      if (ch === undefined) throw new Error('unexpected end of statement while looking for matching single-quote');
      if (ch === "'") return text;
      text += ch;
    }
  }

  // Double quotes expand `$`; the escape character escapes only `"`, `$` and itself (sh rules).
  private doubleQuoted(rawEscapes: boolean): string {
    this.pos++;
    let text = '';
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) throw new Error('unexpected end of statement while looking for matching double-quote');
      if (ch === '"') {
        this.pos++;
        return text;
      }
      if (ch === '$') {
        text += this.dollar();
        checkSize(text.length);
        continue;
      }
      this.pos++;
      if (ch !== this.escape) {
        text += ch;
        continue;
      }
      if (rawEscapes) text += ch;
      const following = this.peek();
      if (following === undefined) continue; // the missing `"` is reported next
      if (following === '"' || following === '$' || following === this.escape) {
        this.pos++;
        text += following;
      } else {
        // A literal escape character. In raw mode it is written twice on purpose: the pattern
        // then reads `\\`, a literal backslash, which is what the double quotes meant.
        text += ch;
      }
    }
  }

  // `<<` followed by blanks stays glued to the next word, so `<< EOF` is one heredoc word.
  private angle(): string {
    this.pos++;
    if (this.peek() !== '<') return '<';
    this.pos++;
    let text = '<<';
    for (let ch = this.peek(); ch === ' ' || ch === '\t' || ch === '\r'; ch = this.peek()) {
      text += ch;
      this.pos++;
    }
    return text;
  }

  private dollar(): string {
    this.pos++;
    if (this.peek() !== '{') {
      const name = this.name();
      return name === '' ? '$' : (this.lookup(name) ?? '');
    }
    this.pos++;
    const first = this.peek();
    if (first === undefined) throw new Error("syntax error: missing '}'");
    if (first === '{' || first === '}' || first === ':') throw new Error('syntax error: bad substitution');
    const name = this.name();
    const op = this.next();
    if (op === undefined) throw new Error("syntax error: missing '}'");
    if (op === '}') return this.lookup(name) ?? '';
    if (op === '/') return this.replace(name);

    // `:` makes an empty value count as unset for - + ?.
    const nullIsUnset = op === ':';
    const modifier = nullIsUnset ? this.next() : op;
    if (modifier === undefined) throw new Error("syntax error: missing '}'");
    const spelled = nullIsUnset ? `:${modifier}` : modifier;
    if (!'-+?#%'.includes(modifier) || (nullIsUnset && (modifier === '#' || modifier === '%'))) {
      throw new Error(`unsupported modifier (${spelled}) in substitution`);
    }
    const word = this.scanBraced(modifier === '#' || modifier === '%');
    const value = this.lookup(name);
    const unset = value === undefined || (nullIsUnset && value === '');
    switch (modifier) {
      case '-':
        return unset ? word : value!;
      case '+':
        return unset ? '' : word;
      case '?':
        if (value === undefined) throw new Error(`${name}: ${word || 'is not allowed to be unset'}`);
        if (unset) throw new Error(`${name}: ${word || 'is not allowed to be empty'}`);
        return value;
      default: {
        // `#`/`%` remove the shortest matching prefix/suffix, `##`/`%%` the longest.
        const greedy = word.startsWith(modifier);
        const pattern = greedy ? word.slice(modifier.length) : word;
        return modifier === '#' ? trimPrefix(value ?? '', pattern, greedy, this.budget) : trimSuffix(value ?? '', pattern, greedy, this.budget);
      }
    }
  }

  // The word after a modifier, up to `}`; running off the end is reported as the missing `}`.
  private scanBraced(rawEscapes: boolean): string {
    try {
      return this.scan('}', rawEscapes).text;
    } catch (err) {
      if (this.atEnd()) throw new Error("syntax error: missing '}'", { cause: err });
      throw err;
    }
  }

  // ${V/pattern/replacement} replaces the first longest match, ${V//pattern/replacement} all.
  private replace(name: string): string {
    const all = this.peek() === '/';
    if (all) this.pos++;
    let pattern: string;
    try {
      pattern = this.scan('/', true).text;
    } catch (err) {
      if (this.atEnd()) throw new Error("syntax error: missing '/' in ${}", { cause: err });
      throw err;
    }
    const replacement = this.scanBraced(true);
    return replaceGlob(this.lookup(name) ?? '', pattern, replacement, all, this.budget);
  }

  // A name is letters, digits and `_`; a leading digit makes a positional parameter of all the
  // digits that follow (`$10x` is `$10` then `x`), and a special parameter is one character.
  private name(): string {
    const first = this.peek();
    if (first === undefined) return '';
    if (DIGIT.test(first)) {
      let digits = '';
      for (let ch = this.peek(); ch !== undefined && DIGIT.test(ch); ch = this.peek()) {
        digits += ch;
        this.pos++;
      }
      return digits;
    }
    if (SPECIAL_PARAMS.has(first)) {
      this.pos++;
      return first;
    }
    let name = '';
    for (let ch = this.peek(); ch !== undefined && isNameChar(ch); ch = this.peek()) {
      name += ch;
      this.pos++;
    }
    return name;
  }
}

function trimPrefix(value: string, pattern: string, greedy: boolean, budget: MatchBudget): string {
  const chars = Array.from(value);
  const m = findGlob(compileGlob(pattern, greedy), chars, 0, true, budget);
  return m === undefined ? value : chars.slice(m.end).join('');
}

// The shortest (or longest) match that ends at the end is the one at the start of the
// reversed value, for the reversed pattern.
function trimSuffix(value: string, pattern: string, greedy: boolean, budget: MatchBudget): string {
  const reversed = Array.from(value).reverse();
  const m = findGlob(reverseGlob(compileGlob(pattern, greedy)), reversed, 0, true, budget);
  return m === undefined ? value : reversed.slice(m.end).reverse().join('');
}

/**
 * `${V/p/r}` (first match) and `${V//p/r}` (every match), with the stars greedy. Successive
 * matches as String.prototype.replace with a global RegExp finds them: after an empty match
 * the search goes on one code point further.
 */
function replaceGlob(value: string, pattern: string, replacement: string, all: boolean, budget: MatchBudget): string {
  const glob = compileGlob(pattern, true);
  const chars = Array.from(value);
  let out = '';
  let last = 0;
  for (let pos = 0; pos <= chars.length;) {
    const m = findGlob(glob, chars, pos, false, budget);
    if (m === undefined) break;
    out += chars.slice(last, m.start).join('') + replacement;
    checkSize(out.length);
    last = m.end;
    pos = m.end === m.start ? m.end + 1 : m.end;
    if (!all) break;
  }
  return out + chars.slice(last).join('');
}
