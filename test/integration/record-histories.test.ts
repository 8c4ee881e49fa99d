// Records the histories test/unit/replay.test.ts replays: real builds through the CLI, the
// dev server and the shared worker, each history written to test/fixtures/histories/ as the
// JSON `temporal workflow show --output json` prints. Skipped unless STRATA_RECORD_HISTORIES=1:
//   npm run build && STRATA_RECORD_HISTORIES=1 node --experimental-vm-modules \
//     node_modules/jest/bin/jest.js dist/test/integration/record-histories.test.js
// (or `npm run record-histories`). Re-record only for a change that is deliberately not
// replay-compatible, and then drain running builds before deploying it (see docs/status.md).
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { findTemporalCli } from '../../worker/temporal.js';
import { REPO_ROOT, strata, strataOk } from '../helpers/cli.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

const OUT = path.join(REPO_ROOT, 'test', 'fixtures', 'histories');
/**
 * The workflow code's generation the histories are recorded with, in their file names: a new
 * one (bump it after a `patched()` change) adds files, so histories of older code stay and
 * keep proving that builds they started still replay. Histories without one predate step images
 * (cache-miss and cache-hit: the instruction cache without step images); `step-images`: step
 * images without the instruction cache; `cache-step-images`: both; `sticky-queues`: a stage's
 * steps after its first on the worker's own queue (workflows/sticky.ts).
 */
const GENERATION = 'sticky-queues';
const record = process.env.STRATA_RECORD_HISTORIES === '1' ? describe : describe.skip;

async function makeContext(files: Record<string, string>): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-history-'));
  for (const [name, content] of Object.entries(files)) await fs.writeFile(path.join(dir, name), content);
  return dir;
}

/**
 * Writes the workflow's history as `NAME.json`, in the JSON Temporal's tools read and write
 * (the temporal CLI's: protobuf JSON converters misbehave under jest's module registry).
 */
async function save(base: string, workflowId: string): Promise<void> {
  const name = `${base}.${GENERATION}`;
  const address = `127.0.0.1:${process.env.STRATA_TEMPORAL_PORT}`;
  const r = await execa(findTemporalCli(), ['workflow', 'show', '--address', address, '--workflow-id', workflowId, '--output', 'json']);
  const history = JSON.parse(r.stdout) as { events: unknown[] };
  expect(history.events.length).toBeGreaterThan(0);
  await fs.mkdir(OUT, { recursive: true });
  await fs.writeFile(path.join(OUT, `${name}.json`), JSON.stringify(history, null, 1) + '\n');
  // Replay needs the real workflow ID: scheduledBuild names its child after its own.
  const index = path.join(OUT, 'workflow-ids.json');
  const ids = JSON.parse(await fs.readFile(index, 'utf8').catch(() => '{}')) as Record<string, string>;
  ids[name] = workflowId;
  await fs.writeFile(index, JSON.stringify(Object.fromEntries(Object.entries(ids).sort()), null, 2) + '\n');
}

const buildId = (stdout: string) => /Build ID: (build-[0-9a-f]+)/.exec(stdout)![1]!;

record('record workflow histories', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(async () => {
    await registry?.stop();
  });

  test('COPY, RUN, WORKDIR and config steps, saved with --output', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nWORKDIR /app\nCOPY a.txt .\nRUN cat a.txt > b.txt\nENV X=1\nCMD ["cat", "b.txt"]\n', 'a.txt': 'a\n' });
    const r = await strataOk(['build', '-t', 'history-run:1', '--output', `type=docker,dest=${path.join(ctx, 'out.tar')}`, ctx]);
    await save('run-copy', buildId(r.stdout));
  });

  test('two stages, COPY --from the first', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox AS build\nRUN echo built > /x\nFROM busybox\nCOPY --from=build /x /x\nRUN cat /x\n' });
    const r = await strataOk(['build', '-t', 'history-multistage:1', ctx]);
    await save('multistage', buildId(r.stdout));
  });

  test('the instruction cache: a build that misses every step, then its rebuild that hits every one', async () => {
    // Unique text: the first build misses whatever the store's cache holds.
    const dockerfile = `FROM busybox AS build\nRUN echo ${Date.now()} > /x\nFROM busybox\nCOPY a.txt /a\nENV X=1\nCOPY --from=build /x /x\nRUN cat /a /x\n`;
    const ctx = await makeContext({ Dockerfile: dockerfile, 'a.txt': 'a\n' });
    const first = await strataOk(['build', '-t', 'history-cache:1', ctx]);
    expect(first.stdout).not.toContain('Using cache');
    await save('cache-miss', buildId(first.stdout));
    const second = await strataOk(['build', '-t', 'history-cache:1', ctx]);
    expect(second.stdout.match(/ ---> Using cache/g)).toHaveLength(5);
    await save('cache-hit', buildId(second.stdout));
  });

  test('a failing COPY retried with a fixed context', async () => {
    const broken = await makeContext({ Dockerfile: 'FROM busybox\nRUN echo before\nCOPY missing.txt /m\nRUN cat /m\n' });
    const fixed = await makeContext({ 'missing.txt': 'here\n' });
    const first = await strata(['build', '--retry-window', '10m', broken]);
    expect(first.exitCode).toBe(2);
    const id = buildId(first.stdout);
    await strataOk(['retry', id, '--context', fixed]);
    await save('retry', id);
  });

  test('a build pushed to a registry', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nRUN echo pushed > /p\n' });
    const r = await strataOk(['build', '--push', '-t', `${registry.address}/history/app:1`, ctx]);
    await save('push', buildId(r.stdout));
  });

  test('a scheduled build and its child build', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nRUN echo scheduled > /s\n' });
    await strataOk(['schedule', 'create', 'history', '--every', '1h', '--paused', '-t', 'history-schedule:1', ctx]);
    try {
      const r = await strataOk(['schedule', 'trigger', 'history', '--wait']);
      const run = /^Run (\S+)$/m.exec(r.stdout)![1]!;
      await save('scheduled', run);
      await save('scheduled-child', / by ([\w.-]+)/.exec(r.stdout)![1]!);
    } finally {
      await strata(['schedule', 'rm', 'history']);
    }
  });
});
