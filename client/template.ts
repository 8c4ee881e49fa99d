// --format as the docker CLI reads it, without a Go template engine: `{{.Field}}` (dotted
// paths too), `{{json .}}` and `{{json .Field}}`, `table` (a header row, columns aligned as
// Go's text/tabwriter aligns docker's), `json` (one object per line), `\t` and `\n` escapes.
import { UsageError } from './errors.js';

/** A row: field name → value (what `{{.Name}}` prints). */
export type Row = Record<string, unknown>;

type Part = { text: string } | { field: string[]; json: boolean };

/** Parses a template once; unknown actions are usage errors naming them. */
export function parseTemplate(template: string): Part[] {
  const parts: Part[] = [];
  const re = /\{\{-?\s*(.*?)\s*-?\}\}/gs;
  let last = 0;
  for (const m of template.matchAll(re)) {
    if (m.index! > last) parts.push({ text: template.slice(last, m.index) });
    last = m.index! + m[0].length;
    const action = m[1]!;
    const json = /^json\s+(\S+)$/.exec(action);
    const path = json ? json[1]! : action;
    if (!/^\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?$/.test(path)) {
      throw new UsageError(`format: unsupported template action {{${action}}}: strata knows {{.Field}}, {{json .}} and {{json .Field}}`);
    }
    parts.push({ field: path === '.' ? [] : path.slice(1).split('.'), json: !!json });
  }
  if (last < template.length) parts.push({ text: template.slice(last) });
  return parts;
}

/** Renders `parts` for one row; a field the row lacks is a usage error naming it. */
export function render(parts: Part[], row: Row): string {
  let out = '';
  for (const p of parts) {
    if ('text' in p) {
      out += p.text;
      continue;
    }
    let v: unknown = row;
    for (const [i, key] of p.field.entries()) {
      if (v === null || typeof v !== 'object' || !Object.hasOwn(v, key)) {
        if (i > 0 && (v === null || v === undefined)) {
          v = undefined;
          break;
        }
        throw new UsageError(`format: can't evaluate field ${key}: the fields are ${Object.keys((v as object) ?? {}).join(', ')}`);
      }
      v = (v as Record<string, unknown>)[key];
    }
    // `{{json .}}` marshals docker's row context as a map: keys sorted.
    if (p.json && p.field.length === 0) v = Object.fromEntries(Object.entries(row).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    out += p.json ? goJson(v) : goValue(v);
  }
  return out;
}

/** JSON as Go's encoding/json writes it: `<`, `>` and `&` escaped, no spaces. */
export function goJson(v: unknown): string {
  return (JSON.stringify(v ?? null) ?? 'null').replace(/[<>&]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
}

/** A value as Go's fmt %v prints it in a template. */
function goValue(v: unknown): string {
  if (v === undefined) return '<no value>';
  if (v === null) return '<nil>';
  if (Array.isArray(v)) return `[${v.map(goValue).join(' ')}]`;
  if (typeof v === 'object') {
    const keys = Object.keys(v).sort();
    return `map[${keys.map((k) => `${k}:${goValue((v as Record<string, unknown>)[k])}`).join(' ')}]`;
  }
  return String(v);
}

/**
 * Aligns tab-separated cells as Go's text/tabwriter with docker's settings (minimum width
 * 10, padding 3, spaces): a cell ended by a tab belongs to a column whose width is its
 * widest cell plus the padding, over each run of lines that have that column; the last
 * cell of a line is never padded.
 */
export function tabwrite(text: string, minWidth = 10, padding = 3): string {
  const lines = text.split('\n').map((l) => l.split('\t'));
  const widths: number[] = [];
  const out: string[] = [];
  const width = (s: string) => [...s].length;
  const write = (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const cells = lines[i]!;
      let s = '';
      cells.forEach((c, j) => {
        s += c;
        if (j < cells.length - 1 && j < widths.length) s += ' '.repeat(Math.max(0, widths[j]! - width(c)));
      });
      out.push(s);
    }
  };
  const format = (line0: number, line1: number) => {
    const column = widths.length;
    let start = line0;
    for (let t = line0; t < line1; t++) {
      if (column >= lines[t]!.length - 1) continue;
      write(start, t);
      start = t;
      let w = minWidth;
      for (; t < line1 && column < lines[t]!.length - 1; t++) w = Math.max(w, width(lines[t]![column]!) + padding);
      widths.push(w);
      format(start, t);
      widths.pop();
      start = t;
    }
    write(start, line1);
  };
  format(0, lines.length);
  return out.join('\n');
}

export interface TableSpec {
  /** The table's default row template, e.g. `{{.Repository}}\t{{.Tag}}`. */
  defaultRow: string;
  /** Field → header text (`ID` → `IMAGE ID`). */
  headers: Record<string, string>;
}

/**
 * Writes `rows` as `format` asks: undefined or `table` → the default table; `table TPL` →
 * a table of TPL; `json` → one JSON object per row; anything else → TPL once per row.
 */
export function formatRows(format: string | undefined, rows: Row[], spec: TableSpec): string {
  let f = (format ?? 'table').trim();
  const table = f === 'table' || f.startsWith('table ');
  if (f === 'table') f = spec.defaultRow;
  else if (table) f = f.slice('table'.length).trim();
  else if (f === 'json') f = '{{json .}}';
  f = f.replaceAll('\\t', '\t').replaceAll('\\n', '\n');
  const parts = parseTemplate(f);
  const body = rows.map((r) => `${render(parts, r)}\n`).join('');
  if (!table) return body;
  const header = parts.map((p) => ('text' in p ? p.text : p.field.length === 0 ? '' : (spec.headers[p.field.join('.')] ?? p.field.join('.').toUpperCase()))).join('');
  return `${tabwrite(`${header}\n${body}`)}`;
}
