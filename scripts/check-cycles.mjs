#!/usr/bin/env node
// Fails when engine/'s folders import each other in a cycle. Each folder under engine/ (and
// each file at its top: digest.ts, errors.ts) is one node; an import statement, `import type`
// included, is an edge. Layering is about what a folder needs to know, so types count too.
// File-level cycles are eslint's import-x/no-cycle; this is the floor plan's check.
// Usage: node scripts/check-cycles.mjs [ROOT] (default: engine, beside this script's parent)
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const root = path.resolve(repo, process.argv[2] ?? 'engine');

function* sources(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* sources(p);
    else if (/\.ts$/.test(e.name) && !/\.d\.ts$/.test(e.name)) yield p;
  }
}

/** The node a file belongs to: its first folder under root, or the file itself at the top. */
function nodeOf(file) {
  const rel = path.relative(root, file);
  if (rel.startsWith('..')) return undefined;
  const [first, ...rest] = rel.split(path.sep);
  return rest.length > 0 ? `${first}/` : first.replace(/\.js$/, '.ts');
}

// `import … from './x.js'`, `export … from`, `import './x.js'`, `import('./x.js')`: relative only.
const IMPORT = /(?:^|\n)\s*(?:import|export)\s+(?:[^'";]*?\s+from\s+)?['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;

const edges = new Map(); // from → Map(to → "file:line" of one import that makes the edge)
for (const file of sources(root)) {
  const text = readFileSync(file, 'utf8');
  const from = nodeOf(file);
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2];
    const to = nodeOf(path.resolve(path.dirname(file), spec));
    if (!to || to === from) continue;
    if (!edges.has(from)) edges.set(from, new Map());
    if (!edges.get(from).has(to)) {
      const line = text.slice(0, m.index + m[0].length).split('\n').length;
      edges.get(from).set(to, `${path.relative(repo, file)}:${line}`);
    }
  }
}

// Depth-first search; a grey node met again closes a cycle.
const state = new Map();
const stack = [];
const cycles = [];
function visit(n) {
  state.set(n, 'grey');
  stack.push(n);
  for (const to of [...(edges.get(n)?.keys() ?? [])].sort()) {
    if (state.get(to) === 'grey') cycles.push([...stack.slice(stack.indexOf(to)), to]);
    else if (!state.has(to)) visit(to);
  }
  stack.pop();
  state.set(n, 'black');
}
for (const n of [...edges.keys()].sort()) if (!state.has(n)) visit(n);

const rel = path.relative(repo, root) || '.';
if (cycles.length === 0) {
  console.log(`check-cycles: ${rel}: ${edges.size} folders, no import cycle between them`);
  process.exit(0);
}
for (const c of cycles) {
  console.error(`check-cycles: ${rel}: import cycle ${c.join(' → ')}`);
  for (let i = 0; i < c.length - 1; i++) console.error(`  ${c[i]} → ${c[i + 1]}: ${edges.get(c[i]).get(c[i + 1])}`);
}
process.exit(1);
