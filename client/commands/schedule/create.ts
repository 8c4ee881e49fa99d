// `strata schedule create`: a Temporal Schedule whose action starts the scheduledBuild workflow,
// which resolves the source, decides whether to build, and runs buildImage as a child.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';
import { makeFilter, packContext, readDockerignore } from '../../../engine/context/pack.js';
import { parseDockerfile } from '../../../engine/dockerfile/parse.js';
import { classifyAddSource } from '../../../engine/plan/addSource.js';
import { openLease } from '../../../engine/store/leases.js';
import { storeId } from '../../../engine/store/identity.js';
import { pinScheduleBlobs, removeScheduleState, SCHEDULE_ID } from '../../../engine/store/schedules.js';
import type { Store } from '../../../engine/store/store.js';
import { remoteFromEnv } from '../../../engine/remote/remoteStore.js';
import type { scheduledBuild } from '../../../workflows/scheduledBuild.js';
import type { ScheduledBuildRequest, ScheduleSource } from '../../../workflows/scheduleTypes.js';
import { UsageError } from '../../errors.js';
import { buildSettings, checkCacheFilter, parseDuration, type BuildFlags } from '../../options.js';
import { withSession, type Session } from '../../session.js';
import { WORKFLOW_TYPE, type ScheduleMemo } from './common.js';

export interface CreateOptions extends BuildFlags {
  cron?: string;
  every?: string;
  sourceMode?: string;
  when: string;
  paused?: boolean;
}

export function runScheduleCreate(id: string, sourceArg: string, opts: CreateOptions): Promise<void> {
  return withSession(async (session) => {
    // A snapshot is in the store before anything names it: held from the store's GC until pinned.
    const lease = await openLease(session.store.root, `schedule-create-${id}`);
    try {
      await createSchedule(id, sourceArg, opts, session);
    } finally {
      await lease.release();
    }
  });
}

async function createSchedule(id: string, sourceArg: string, opts: CreateOptions, { store, client, hasLiveWorker, queue }: Session): Promise<void> {
  if (!SCHEDULE_ID.test(id)) throw new UsageError(`schedule create: invalid ID ${JSON.stringify(id)} (letters, digits, _ . -; not starting with . or -)`);
  if ((opts.cron === undefined) === (opts.every === undefined)) throw new UsageError('schedule create: give exactly one of --cron EXPR and --every DURATION');
  if (opts.when !== 'always' && opts.when !== 'changed') throw new UsageError(`schedule create: --when must be always or changed, got ${JSON.stringify(opts.when)}`);
  if (opts.file === '-') throw new UsageError('schedule create: -f - (stdin) cannot be read again at each run; give a file');
  const every = opts.every === undefined ? undefined : parseDuration(opts.every);
  const spec = every !== undefined ? `every ${opts.every}` : `cron ${opts.cron}`;

  // The store's ID: `builds ls` in this store lists the schedule's builds.
  const build: ScheduledBuildRequest['build'] = { ...buildSettings(opts, 'schedule create'), storeId: await storeId(store) };
  const { tags } = build;
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
  // Every run builds the snapshot: the GC keeps its blobs until the schedule is removed.
  if (source.kind === 'snapshot') await pinScheduleBlobs(store.root, id, [source.contextDigest, source.dockerfileDigest]);

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
  console.log(
    `Created schedule ${id}: ${spec}, ${opts.when === 'changed' ? 'when changed' : 'always'}, ${shown}${tags.length ? ` → ${tags.join(', ')}` : ''}${opts.push ? ' (pushed)' : ''}`,
  );
  if (!(await hasLiveWorker())) {
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
  // A syntax error shows now rather than at the first run (a dir source's file may still change).
  checkCacheFilter(opts.cacheFilter, parseDockerfile(dockerfileText.toString('utf8'), path.basename(dockerfilePath)), 'schedule create');
  if (mode === 'dir') {
    return { source: { kind: 'dir', dir, dockerfile: opts.file ? dockerfilePath : undefined }, shown: `directory ${dir} (read at each run)` };
  }
  const filter = makeFilter(await readDockerignore(dir, opts.file ? dockerfilePath : undefined));
  const context = await store.putBlobStream(packContext(dir, filter));
  const dockerfile = await store.putBlob(dockerfileText);
  // Its runs may be built by workers on other machines (engine/remote/).
  await remoteFromEnv()?.putBlobs(store, [context.digest, dockerfile.digest]);
  return {
    source: { kind: 'snapshot', contextDigest: context.digest, dockerfileDigest: dockerfile.digest, dockerfileName: path.basename(dockerfilePath), dir },
    shown: `snapshot of ${dir} (${context.digest.slice(0, 19)})`,
  };
}
