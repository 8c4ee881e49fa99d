// `strata schedule`: rebuild pipelines as Temporal Schedules. Each schedule's action starts
// the scheduledBuild workflow, which resolves the source, decides whether to build, and runs
// buildImage as a child; this file makes, lists, describes and steers them.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  Client,
  Connection,
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  WorkflowFailedError,
  type ScheduleDescription,
} from '@temporalio/client';
import { Command } from 'commander';
import { normalizeReference } from '../engine/image/reference.js';
import { classifyAddSource } from '../engine/plan/addSource.js';
import { removeScheduleState, SCHEDULE_ID } from '../engine/store/schedules.js';
import { Store } from '../engine/store/store.js';
import { connectionOptions, ensureTemporal } from '../worker/temporal.js';
import { taskQueue } from '../worker/worker.js';
import type { scheduledBuild } from '../workflows/scheduledBuild.js';
import type { ScheduledBuildRequest, ScheduledBuildResult, ScheduleSource, ScheduleWhen } from '../workflows/scheduleTypes.js';
import { checkPushTags, hasLiveWorker, parseBuildArgs, parseDuration, sourceDateEpoch, UsageError } from './build.js';
import { makeFilter, packContext, readDockerignore } from './context.js';

const WORKFLOW_TYPE = 'scheduledBuild';

/** What `ls` shows without reading each schedule's action: kept in the schedule's memo. */
interface ScheduleMemo {
  spec: string;
  source: string;
  when: ScheduleWhen;
  tags: string[];
}

interface CreateOptions {
  cron?: string;
  every?: string;
  tag: string[];
  buildArg: string[];
  target?: string;
  file?: string;
  push?: boolean;
  sourceMode?: string;
  when: string;
  paused?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function scheduleCommand(): Command {
  const cmd = new Command('schedule').description('Rebuild images on a schedule (Temporal Schedules; runs need a `strata worker`)').addHelpText(
    'after',
    `
SOURCE is one of:
  DIR                      packed now, as \`strata build\` sends it: every run builds these files
                           (--source-mode snapshot, the default for a directory)
  DIR --source-mode dir    read by the worker at each run (the worker's disk: same machine or
                           a shared path); -f is read at each run too
  URL#REF[:SUBDIR]         a git repository cloned at each run (https://…/x.git, git@host:x,
                           ssh://, git://; file:///…/x.git when the worker has
                           STRATA_ALLOW_FILE_GIT=1); -f is a path inside the checkout

--when changed skips a run when the context, the Dockerfile, the base images' digests and the
build flags are those of the schedule's last successful build (kept in the store under the
schedule's ID). A run that starts while the previous one still runs is skipped.

Examples:
  strata schedule create nightly --cron '0 3 * * *' -t app:nightly ./app
  strata schedule create poll --every 10m --when changed -t app:edge 'https://example.com/app.git#main'
  strata schedule trigger nightly --wait
  strata schedule describe nightly`,
  );

  cmd
    .command('create')
    .description('Create a schedule that builds SOURCE')
    .argument('<id>', 'the schedule ID (letters, digits, _ . -)')
    .argument('<source>', 'a directory or a git URL (see `strata schedule --help`)')
    .option('--cron <expr>', "when to run, as cron (UTC): e.g. '0 3 * * *'")
    .option('--every <duration>', 'run at this interval: e.g. 30s, 10m, 1h')
    .option('--when <always|changed>', 'build at every run, or only when an input changed', 'always')
    .option('--source-mode <snapshot|dir|git>', 'how SOURCE is read (default: snapshot for a directory, git for a URL)')
    .option('-f, --file <file>', 'the Dockerfile (default: Dockerfile in the context)')
    .option('-t, --tag <name:tag>', 'name the image (repeatable)', collect, [])
    .option('--build-arg <key=value>', 'set a build-time variable (repeatable)', collect, [])
    .option('--target <stage>', 'build this stage and what it needs')
    .option('--push', 'push each -t name to its registry after each build (read by the worker: its ~/.docker/config.json)')
    .option('--paused', 'create the schedule paused (`trigger` still runs it)')
    .action((id: string, source: string, opts: CreateOptions) => withClient((ctx) => createSchedule(ctx, id, source, opts)));

  cmd
    .command('ls')
    .description('List the schedules')
    .action(() => withClient(listSchedules));

  cmd
    .command('describe')
    .description("Show a schedule: its spec, source, state and its recent runs' results")
    .argument('<id>')
    .action((id: string) => withClient((ctx) => describeSchedule(ctx, id)));

  cmd
    .command('trigger')
    .description('Run a schedule now (skipped while a run is still going)')
    .argument('<id>')
    .option('--wait', "wait for the run and print its result (exit 1 if it failed)")
    .action((id: string, opts: { wait?: boolean }) => withClient((ctx) => triggerSchedule(ctx, id, opts.wait ?? false)));

  cmd
    .command('pause')
    .description('Stop a schedule from running until unpaused')
    .argument('<id>')
    .option('--note <text>', 'why (shown by describe)')
    .action((id: string, opts: { note?: string }) =>
      withClient(async ({ client }) => {
        await client.schedule.getHandle(id).pause(opts.note ?? 'paused by strata schedule pause');
        console.log(`Paused schedule ${id}`);
      }),
    );

  cmd
    .command('unpause')
    .description('Let a paused schedule run again')
    .argument('<id>')
    .action((id: string) =>
      withClient(async ({ client }) => {
        await client.schedule.getHandle(id).unpause('unpaused by strata schedule unpause');
        console.log(`Unpaused schedule ${id}`);
      }),
    );

  cmd
    .command('rm')
    .description('Delete a schedule (a running build finishes; images stay)')
    .argument('<id>')
    .action((id: string) =>
      withClient(async ({ client, store }) => {
        await client.schedule.getHandle(id).delete();
        await removeScheduleState(store.root, id);
        console.log(`Removed schedule ${id}`);
      }),
    );

  return cmd;
}

interface Ctx {
  store: Store;
  client: Client;
  namespace: string;
}

async function withClient(fn: (ctx: Ctx) => Promise<void>): Promise<void> {
  const store = await Store.open();
  const target = await ensureTemporal(store.root, (m) => console.error(m));
  const connection = await Connection.connect(connectionOptions(target));
  try {
    await fn({ store, client: new Client({ connection, namespace: target.namespace }), namespace: target.namespace });
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) throw new UsageError(`schedule: no schedule ${err.scheduleId}`);
    throw err;
  } finally {
    await connection.close();
  }
}

async function createSchedule({ store, client, namespace }: Ctx, id: string, sourceArg: string, opts: CreateOptions): Promise<void> {
  if (!SCHEDULE_ID.test(id)) throw new UsageError(`schedule create: invalid ID ${JSON.stringify(id)} (letters, digits, _ . -; not starting with . or -)`);
  if ((opts.cron === undefined) === (opts.every === undefined)) throw new UsageError('schedule create: give exactly one of --cron EXPR and --every DURATION');
  if (opts.when !== 'always' && opts.when !== 'changed') throw new UsageError(`schedule create: --when must be always or changed, got ${JSON.stringify(opts.when)}`);
  if (opts.file === '-') throw new UsageError('schedule create: -f - (stdin) cannot be read again at each run; give a file');
  const every = opts.every === undefined ? undefined : parseDuration(opts.every);
  const spec = every !== undefined ? `every ${opts.every}` : `cron ${opts.cron}`;

  const tags = opts.tag.map((t) => {
    try {
      return normalizeReference(t);
    } catch (e) {
      throw new UsageError(`-t ${t}: ${(e as Error).message}`);
    }
  });
  const build: ScheduledBuildRequest['build'] = {
    buildArgs: parseBuildArgs(opts.buildArg),
    target: opts.target,
    tags,
    sourceDateEpoch: sourceDateEpoch(),
    ...(opts.push ? { push: true } : {}),
  };
  if (opts.push) checkPushTags(tags, 'schedule create');
  const { source, shown } = await resolveSourceArg(store, sourceArg, opts);
  const request: ScheduledBuildRequest = { scheduleId: id, source, when: opts.when, build };
  const memo: ScheduleMemo = { spec, source: shown, when: opts.when, tags };

  // A new schedule under an old ID starts without the old one's last build.
  const taken = await client.schedule
    .getHandle(id)
    .describe()
    .then(
      () => true,
      (err: unknown) => {
        if (err instanceof ScheduleNotFoundError) return false;
        throw err;
      },
    );
  if (taken) throw new UsageError(`schedule create: schedule ${id} exists (remove it first with strata schedule rm ${id})`);
  await removeScheduleState(store.root, id);

  const queue = taskQueue();
  try {
    await client.schedule.create<typeof scheduledBuild>({
      scheduleId: id,
      spec: every !== undefined ? { intervals: [{ every }] } : { cronExpressions: [opts.cron!] },
      action: { type: 'startWorkflow', workflowType: WORKFLOW_TYPE, args: [request], taskQueue: queue, workflowId: `schedule-${id}` },
      policies: { overlap: ScheduleOverlapPolicy.SKIP },
      state: { paused: opts.paused ?? false, note: opts.paused ? 'created paused' : undefined },
      memo: memo as unknown as Record<string, unknown>,
    });
  } catch (err) {
    if (err instanceof ScheduleAlreadyRunning) throw new UsageError(`schedule create: schedule ${id} exists`);
    // The server checks the cron expression; its message says what is wrong.
    if (err instanceof Error && /invalid|cron|interval/i.test(err.message)) throw new UsageError(`schedule create: ${err.message}`);
    throw err;
  }
  console.log(`Created schedule ${id}: ${spec}, ${opts.when === 'changed' ? 'when changed' : 'always'}, ${shown}${tags.length ? ` → ${tags.join(', ')}` : ''}${opts.push ? ' (pushed)' : ''}`);
  if (!(await hasLiveWorker(client, namespace, queue))) {
    console.error(`warning: no worker polls task queue "${queue}": runs wait until \`strata worker\` runs`);
  }
}

/** Turns SOURCE and its flags into what each run reads; a snapshot is packed here and now. */
async function resolveSourceArg(store: Store, arg: string, opts: CreateOptions): Promise<{ source: ScheduleSource; shown: string }> {
  const isGit = classifyAddSource(arg)?.kind === 'git';
  const mode = opts.sourceMode ?? (isGit ? 'git' : 'snapshot');
  if (mode === 'git') {
    if (!isGit) throw new UsageError(`schedule create: ${arg} is not a git URL (URL.git#REF, git@host:path, ssh://, git://, file:///….git)`);
    if (opts.file !== undefined && path.isAbsolute(opts.file)) throw new UsageError('schedule create: with a git source, -f is a path inside the repository');
    return { source: { kind: 'git', url: arg, dockerfile: opts.file }, shown: `git ${arg}` };
  }
  if (mode !== 'snapshot' && mode !== 'dir') throw new UsageError(`schedule create: --source-mode must be snapshot, dir or git, got ${JSON.stringify(mode)}`);
  if (isGit) throw new UsageError(`schedule create: ${arg} is a git URL: it is cloned at each run (leave out --source-mode ${mode})`);
  const dir = path.resolve(arg);
  const st = await fs.stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new UsageError(`schedule create: source ${arg} is not a directory`);
  const dockerfilePath = opts.file ? path.resolve(opts.file) : path.join(dir, 'Dockerfile');
  const dockerfileText = await fs.readFile(dockerfilePath).catch((e: NodeJS.ErrnoException) => {
    throw new UsageError(`schedule create: cannot read Dockerfile ${dockerfilePath}: ${e.code ?? e.message}`);
  });
  if (mode === 'dir') {
    return { source: { kind: 'dir', dir, dockerfile: opts.file ? dockerfilePath : undefined }, shown: `directory ${dir} (read at each run)` };
  }
  const filter = makeFilter(await readDockerignore(dir, opts.file ? dockerfilePath : undefined));
  const context = await store.putBlobStream(packContext(dir, filter));
  const dockerfile = await store.putBlob(dockerfileText);
  return {
    source: { kind: 'snapshot', contextDigest: context.digest, dockerfileDigest: dockerfile.digest, dockerfileName: path.basename(dockerfilePath), dir },
    shown: `snapshot of ${dir} (${context.digest.slice(0, 19)})`,
  };
}

async function listSchedules({ client }: Ctx): Promise<void> {
  const rows = [['ID', 'STATE', 'SCHEDULE', 'WHEN', 'NEXT RUN', 'SOURCE']];
  for await (const s of client.schedule.list()) {
    if (s.action?.workflowType !== WORKFLOW_TYPE) continue;
    const memo = (s.memo ?? {}) as Partial<ScheduleMemo>;
    const next = s.info.nextActionTimes[0];
    rows.push([s.scheduleId, s.state.paused ? 'paused' : 'active', memo.spec ?? '?', memo.when ?? '?', s.state.paused || !next ? '-' : next.toISOString(), memo.source ?? '?']);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]! + 3)).join('').trimEnd());
}

async function describeSchedule({ client }: Ctx, id: string): Promise<void> {
  const d = await client.schedule.getHandle(id).describe();
  if (d.action.workflowType !== WORKFLOW_TYPE) throw new UsageError(`schedule describe: ${id} is not a strata schedule (it starts ${d.action.workflowType})`);
  const memo = d.memo as Partial<ScheduleMemo> | undefined;
  const req = d.action.args?.[0] as ScheduledBuildRequest;
  const field = (name: string, value: string) => console.log(`${(name + ':').padEnd(13)}${value}`);
  field('Schedule', id);
  field('Spec', memo?.spec ?? describeSpec(d));
  field('Source', memo?.source ?? req.source.kind);
  if (req.source.kind !== 'snapshot' && req.source.dockerfile) field('Dockerfile', req.source.dockerfile);
  field('Tags', req.build.tags.join(', ') || '(none)');
  if (Object.keys(req.build.buildArgs).length) field('Build args', Object.entries(req.build.buildArgs).map(([k, v]) => `${k}=${v}`).join(' '));
  if (req.build.target) field('Target', req.build.target);
  field('When', req.when);
  field('State', d.state.paused ? `paused${d.state.note ? ` (${d.state.note})` : ''}` : 'active');
  if (!d.state.paused && d.info.nextActionTimes[0]) field('Next run', d.info.nextActionTimes[0].toISOString());
  field('Runs', `${d.info.numActionsTaken} started, ${d.info.numActionsSkippedOverlap} skipped while one ran`);
  const running = new Set(d.info.runningActions.map((a) => a.workflow.firstExecutionRunId));
  const recent = [...d.info.recentActions].reverse();
  if (recent.length === 0) return;
  console.log('Recent runs (newest first):');
  for (const a of recent) {
    const { workflowId, firstExecutionRunId } = a.action.workflow;
    const outcome = running.has(firstExecutionRunId) ? 'running' : await runOutcome(client, workflowId, firstExecutionRunId);
    console.log(`  ${a.takenAt.toISOString()}  ${workflowId}  ${outcome}`);
  }
}

function describeSpec(d: ScheduleDescription): string {
  const every = d.spec.intervals?.[0]?.every;
  if (every !== undefined) return `every ${every}ms`;
  return JSON.stringify(d.spec);
}

/** One run's result as a line: `built ID …`, `skipped: …`, `failed: …`, or its status. */
async function runOutcome(client: Client, workflowId: string, runId: string): Promise<string> {
  const handle = client.workflow.getHandle(workflowId, runId);
  const status = (await handle.describe()).status.name;
  if (status === 'RUNNING') return 'running';
  if (status !== 'COMPLETED' && status !== 'FAILED') return status.toLowerCase();
  try {
    return formatResult((await handle.result()) as ScheduledBuildResult);
  } catch (err) {
    return `failed: ${failureMessage(err)}`;
  }
}

function formatResult(r: ScheduledBuildResult): string {
  const at = r.revision ? ` at ${r.revision.slice(0, 12)}` : '';
  if (r.outcome === 'skipped') return `skipped: ${r.reason}${at} (image ${r.imageId.slice(7, 19)})`;
  const pushed = r.pushed?.length ? `, pushed ${r.pushed.map((p) => `${p.reference}@${p.digest}`).join(', ')}` : '';
  return `built ${r.imageId.slice(7, 19)}${at}${r.tags.length ? ` (${r.tags.join(', ')})` : ''} by ${r.buildId}${pushed}`;
}

function failureMessage(err: unknown): string {
  if (err instanceof WorkflowFailedError) return err.cause?.message ?? err.message;
  return err instanceof Error ? err.message : String(err);
}

/** How long `trigger --wait` waits for the schedule to start the run. */
const START_WAIT_MS = 60_000;

async function triggerSchedule({ client, namespace }: Ctx, id: string, wait: boolean): Promise<void> {
  const handle = client.schedule.getHandle(id);
  const before = await handle.describe();
  if (before.action.workflowType !== WORKFLOW_TYPE) throw new UsageError(`schedule trigger: ${id} is not a strata schedule`);
  const busy = before.info.runningActions[0];
  if (busy) throw new UsageError(`schedule trigger: run ${busy.workflow.workflowId} of ${id} is still going; the overlap policy (skip) would drop this one`);
  const queue = before.action.taskQueue;
  const live = await hasLiveWorker(client, namespace, queue);
  if (wait && !live) throw new UsageError(`schedule trigger: no worker polls task queue "${queue}" to run it; start \`strata worker\``);
  await handle.trigger(ScheduleOverlapPolicy.SKIP);
  if (!wait) {
    console.log(`Triggered schedule ${id}`);
    if (!live) console.error(`warning: no worker polls task queue "${queue}": the run waits until \`strata worker\` runs`);
    return;
  }
  const runsOf = (d: ScheduleDescription) => [...d.info.runningActions.map((a) => a.workflow), ...d.info.recentActions.map((a) => a.action.workflow)];
  const seen = new Set(runsOf(before).map((w) => w.firstExecutionRunId));
  const deadline = Date.now() + START_WAIT_MS;
  let run: { workflowId: string; firstExecutionRunId: string } | undefined;
  while (!run) {
    if (Date.now() > deadline) throw new UsageError(`schedule trigger: ${id} started no run within ${START_WAIT_MS / 1000}s`);
    await new Promise((r) => setTimeout(r, 200));
    run = runsOf(await handle.describe()).find((w) => !seen.has(w.firstExecutionRunId));
  }
  console.log(`Run ${run.workflowId}`);
  try {
    console.log(formatResult((await client.workflow.getHandle(run.workflowId, run.firstExecutionRunId).result()) as ScheduledBuildResult));
  } catch (err) {
    throw new UsageError(`run ${run.workflowId} failed: ${failureMessage(err)}`);
  }
}
