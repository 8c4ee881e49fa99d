// Replays recorded histories of real builds (test/fixtures/histories/, recorded by
// test/integration/record-histories.test.ts) against today's workflow code, so a change that
// would break running builds (a command added, removed or reordered) fails here first.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { BUNDLE_PATH } from '../../worker/bundle.js';
import { REPO_ROOT } from '../helpers/cli.js';

const DIR = path.join(REPO_ROOT, 'test', 'fixtures', 'histories');

// The replay worker's state changes are logged at INFO: only warnings matter here.
Runtime.install({ logger: new DefaultLogger('WARN') });

test('every recorded build replays on the current workflow code', async () => {
  // Each history's workflow ID: scheduledBuild names its child after its own.
  const ids = JSON.parse(await fs.readFile(path.join(DIR, 'workflow-ids.json'), 'utf8')) as Record<string, string>;
  expect(Object.keys(ids).length).toBeGreaterThanOrEqual(6);
  const histories = await Promise.all(
    // JSON as the temporal CLI writes it: the worker converts it (historyFromJSON) itself.
    Object.entries(ids).map(async ([name, workflowId]) => ({ workflowId, history: JSON.parse(await fs.readFile(path.join(DIR, `${name}.json`), 'utf8')) as unknown })),
  );
  const failures: string[] = [];
  for await (const r of Worker.runReplayHistories({ workflowBundle: { codePath: BUNDLE_PATH }, replayName: 'strata-replay' }, histories)) {
    if (r.error) failures.push(`${r.workflowId}: ${r.error.name}: ${r.error.message}`);
  }
  expect(failures).toEqual([]);
});
