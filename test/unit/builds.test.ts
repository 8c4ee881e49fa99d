// The retry window's syntax and the visibility queries `strata builds ls` sends.
import { parseRetryWindow } from '../../client/commands/build.js';
import { listQuery } from '../../client/commands/builds/ls.js';

test.each([
  ['0', 0],
  ['0s', 0],
  ['90s', 90_000],
  ['30m', 1_800_000],
  ['24h', 86_400_000],
])('--retry-window %s is %d ms', (input, ms) => {
  expect(parseRetryWindow(input)).toBe(ms);
});

test.each(['-1', 'soon', ''])('--retry-window %j is refused', (input) => {
  expect(() => parseRetryWindow(input)).toThrow(/invalid duration/);
});

test.each([
  [{}, "WorkflowType = 'buildImage'"],
  // Tags are matched in the form builds record them: normalized.
  [{ tag: 'app' }, "WorkflowType = 'buildImage' AND StrataTags = 'app:latest'"],
  [{ tag: 'docker.io/library/app:1' }, "WorkflowType = 'buildImage' AND StrataTags = 'app:1'"],
  [{ status: 'failed' }, "WorkflowType = 'buildImage' AND StrataStatus = 'failed'"],
  // A Reset ends the old run without changing its last status: open runs only.
  [{ status: 'waiting' }, "WorkflowType = 'buildImage' AND StrataStatus = 'waiting' AND ExecutionStatus = 'Running'"],
  [{ schedule: "nightly'x" }, "WorkflowType = 'buildImage' AND TemporalScheduledById = 'nightly\\'x'"],
])('builds ls %j queries %s', (opts, query) => {
  expect(listQuery(opts)).toBe(query);
});

test.each([
  [{}, "WorkflowType = 'buildImage' AND StrataStore = '0123456789abcdef'"],
  [{ all: true }, "WorkflowType = 'buildImage'"],
  [{ tag: 'app:1' }, "WorkflowType = 'buildImage' AND StrataStore = '0123456789abcdef' AND StrataTags = 'app:1'"],
])("builds ls %j in a store queries that store's builds: %s", (opts, query) => {
  expect(listQuery(opts, '0123456789abcdef')).toBe(query);
});

test('builds ls --status refuses a status builds never have', () => {
  expect(() => listQuery({ status: 'done' })).toThrow(/--status must be one of running, waiting, succeeded, failed, cancelled/);
});
