// Fuzzing the Dockerfile parser and planner: 10,000 cases of one seed (mutated corpus
// Dockerfiles and generated ones, test/fuzz/generate.ts) must each end, within a per-case
// bound, in a plan or a clear engine error with a code: no hang, no crash, no other error.
// Longer runs: `node scripts/fuzz.mjs --count 100000 --seed S`.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runFuzz } from '../fuzz/runner.js';
import { runCase } from '../fuzz/worker.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const SEED = Number(process.env.STRATA_FUZZ_SEED ?? 20240611);
const COUNT = Number(process.env.STRATA_FUZZ_COUNT ?? 10_000);

test(`${COUNT} fuzzed Dockerfiles (seed ${SEED}) end in a plan or a clear error`, async () => {
  const report = await runFuzz({ seed: SEED, count: COUNT, timeBudgetMs: 50_000, caseTimeoutMs: 5_000, repo: REPO });
  // The report shows what the cases came to (plans, and each error code) when a run fails.
  expect({ findings: report.findings }).toEqual({ findings: [] });
  expect(report.cases).toBe(COUNT);
  // Neither all plans nor all errors: the generator reaches both.
  expect(report.outcomes.ok).toBeGreaterThan(COUNT / 20);
  expect(report.outcomes.DOCKERFILE_INVALID).toBeGreaterThan(COUNT / 20);
}, 120_000);

// Each crash or hang the fuzzer found, fixed, as a row.
describe('fuzz findings', () => {
  test.each<[string, string, string | undefined]>([
    // Overflowed the stack in parse.ts's syntax check.
    ['ONBUILD chained 20,000 times on one line', 'FROM scratch\n' + 'ONBUILD '.repeat(20_000) + 'RUN x\n', 'DOCKERFILE_INVALID'],
    // Backtracked for hours in the RegExp the matcher replaced (seed 20240611 found two).
    ['${A/*a*a…x/y} over a long A', `FROM base\nARG A=${'a'.repeat(60)}\nENV X=\${A/${'*a'.repeat(30)}x/y}\n`, undefined],
    ['${A%%*?*?…x} over a long A', `FROM base\nARG A=${'a'.repeat(60)}\nLABEL x=\${A%%${'*?'.repeat(30)}x}\n`, undefined],
    // Made plans over Temporal's 2 MB limit: each ONBUILD step lists every trigger so far (seed 20240611, case 6499).
    ['3,000 ONBUILD lines', 'FROM scratch\n' + 'ONBUILD COPY note.txt /notes/\n'.repeat(3_000), 'DOCKERFILE_INVALID'],
  ])('%s', async (_name, dockerfile, code) => {
    const outcome = await runCase(dockerfile, {});
    expect(outcome).toEqual(code === undefined ? { kind: 'ok' } : { kind: 'error', code });
  });
});
