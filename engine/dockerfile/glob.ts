// Shell patterns of `${V#p}`, `${V%%p}`, `${V/p/r}` matched in linear time. A RegExp built from
// `*a*a*a…b` backtracks exponentially on a value without `b`; this simulates the same
// pattern as a Thompson NFA with ordered threads (a Pike VM), which gives the match a
// backtracking engine would pick (leftmost, then by the stars' preference) in O(value ×
// pattern) steps, and stops with an error past a step budget.

/** One pattern element: a literal code point, `?` (any one), or `*` (any run). */
type Token = { kind: 'char'; ch: string } | { kind: 'any' } | { kind: 'star' };

/** A compiled pattern; `greedy` stars prefer the longest run, lazy ones the shortest. */
export interface GlobPattern {
  readonly tokens: readonly Token[];
  readonly greedy: boolean;
}

/** Work one expansion may do before it is refused: well under a second. */
export const MAX_MATCH_STEPS = 20_000_000;

/** Counts matcher steps across the searches of one expansion (a `//` replace runs many). */
export class MatchBudget {
  used = 0;
  constructor(readonly limit = MAX_MATCH_STEPS) {}
  spend(n: number): void {
    this.used += n;
    if (this.used > this.limit) throw new Error(`pattern matching needs more than ${this.limit} steps: simplify the pattern or the value`);
  }
}

/**
 * Compiles a shell pattern: `*`, `?`, and `\` escaping `*`, `?` or `\`; `\}` and `\/` are the
 * delimiter kept out of the `${}` syntax (the `\` is dropped). No bracket expressions, as in
 * BuildKit. Throws for any other escape.
 */
export function compileGlob(pattern: string, greedy: boolean): GlobPattern {
  const chars = Array.from(pattern);
  const tokens: Token[] = [];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === '*') {
      // `**` matches what `*` does, and the stars' shared preference picks the same span.
      if (tokens[tokens.length - 1]?.kind !== 'star') tokens.push({ kind: 'star' });
    } else if (ch === '?') {
      tokens.push({ kind: 'any' });
    } else if (ch === '\\') {
      const escaped = chars[i + 1];
      if (escaped === '}' || escaped === '/') continue;
      if (escaped !== '*' && escaped !== '?' && escaped !== '\\') {
        throw new Error(`invalid pattern (${pattern}) in substitution: invalid escape '\\${escaped ?? ''}'`);
      }
      tokens.push({ kind: 'char', ch: escaped });
      i++;
    } else {
      tokens.push({ kind: 'char', ch });
    }
  }
  return { tokens, greedy };
}

/** The pattern read backwards, each `\x` kept as one element: for suffix matching on a reversed value. */
export function reverseGlob(p: GlobPattern): GlobPattern {
  return { tokens: [...p.tokens].reverse(), greedy: p.greedy };
}

// What the RegExp this replaces matched for `?` and `*` (`.` with the `u` flag): any code
// point but a line terminator.
function isLineTerminator(ch: string): boolean {
  return ch === '\n' || ch === '\r' || ch === '\u2028' || ch === '\u2029';
}

/**
 * The first match of `p` in `value` (code points) at or after `from`: its start and end, or
 * undefined. `anchored` only tries `from` itself.
 */
export function findGlob(p: GlobPattern, value: readonly string[], from: number, anchored: boolean, budget: MatchBudget): { start: number; end: number } | undefined {
  const tokens = p.tokens;
  const accept = tokens.length;
  // Thread lists: program counters with the start of their match, in priority order.
  let cur: { pc: number; start: number }[] = [];
  let next: { pc: number; start: number }[] = [];
  // Per list, the generation that last added a pc: a pc joins a list once (its first, best, thread).
  const seen = new Int32Array(accept + 1).fill(-1);
  let generation = 0;

  // Adds pc and what it reaches without reading (a star's skip), in priority order. A star's
  // own thread stays at its pc to read one more code point.
  const add = (list: { pc: number; start: number }[], pc: number, start: number): void => {
    for (;;) {
      if (seen[pc] === generation) return;
      seen[pc] = generation;
      const t = tokens[pc];
      if (t?.kind !== 'star') {
        list.push({ pc, start });
        return;
      }
      if (p.greedy) list.push({ pc, start });
      else {
        // Lazy: skipping comes first; the star's reading thread after whatever that reaches.
        addLazy(list, pc, start);
        return;
      }
      pc++;
    }
  };
  const addLazy = (list: { pc: number; start: number }[], pc: number, start: number): void => {
    add(list, pc + 1, start);
    list.push({ pc, start });
  };

  let matched: { start: number; end: number } | undefined;
  for (let pos = from; ; pos++) {
    if (matched === undefined && (!anchored || pos === from)) add(cur, 0, pos);
    if (cur.length === 0) break;
    budget.spend(cur.length);
    const ch = value[pos];
    generation++; // marks of the list being built, `next`
    for (const t of cur) {
      if (t.pc === accept) {
        // Lower-priority threads lose to this match; higher ones (already in `next`) may still end later.
        matched = { start: t.start, end: pos };
        break;
      }
      if (ch === undefined) continue;
      const tok = tokens[t.pc]!;
      const reads = tok.kind === 'char' ? tok.ch === ch : !isLineTerminator(ch);
      if (reads) add(next, tok.kind === 'star' ? t.pc : t.pc + 1, t.start);
    }
    if (ch === undefined) break;
    // `next` becomes the current list; its marks are this generation's, which the next
    // start thread is checked against.
    [cur, next] = [next, cur];
    next.length = 0;
  }
  return matched;
}
