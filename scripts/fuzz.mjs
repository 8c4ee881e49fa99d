#!/usr/bin/env node
// Long fuzz runs of the Dockerfile parser and planner (the suite runs 10,000 cases):
//   npm run build && node scripts/fuzz.mjs --count 100000 --seed 7 [--case-timeout-ms 5000] [--time-budget-s 3600]
// Prints each crash or hang with its case index and Dockerfile, then a summary; exits 1 when
// any was found. A case is a function of (seed, index): the same arguments find it again.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '100000' },
    seed: { type: 'string', default: String(Date.now() % 1_000_000) },
    'case-timeout-ms': { type: 'string', default: '5000' },
    'time-budget-s': { type: 'string', default: '86400' },
  },
});
const { runFuzz } = await import(path.join(repo, 'dist', 'test', 'fuzz', 'runner.js'));
const report = await runFuzz({
  seed: Number(values.seed),
  count: Number(values.count),
  caseTimeoutMs: Number(values['case-timeout-ms']),
  timeBudgetMs: Number(values['time-budget-s']) * 1000,
  repo,
});
for (const f of report.findings) {
  console.log(`--- ${f.kind} in case ${f.index} (seed ${report.seed})\n${f.detail}\n--- Dockerfile:\n${f.dockerfile}\n`);
}
console.log(
  `seed ${report.seed}: ${report.cases} cases in ${(report.elapsedMs / 1000).toFixed(1)} s; ` +
    `${report.findings.length} crashes or hangs; slowest case ${report.slowest.index} (${report.slowest.ms} ms); outcomes ${JSON.stringify(report.outcomes)}`,
);
process.exitCode = report.findings.length > 0 ? 1 : 0;
