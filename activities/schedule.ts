// Activities of scheduled builds: resolve a schedule's source to a context in the store, and
// keep each schedule's last successful build for `--when changed`.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
// The worker packs a directory exactly as `strata build` does, so the same tree gives the
// same context digest from either side.
import { makeFilter, packContext, readDockerignore } from '../engine/context/pack.js';
import { EngineError, UserInputError } from '../engine/errors.js';
import { resolveInRoot } from '../engine/fsutil/scoped.js';
import { classifyAddSource } from '../engine/plan/addSource.js';
import { cloneGit } from '../engine/steps/add.js';
import { readScheduleState, writeScheduleState } from '../engine/store/schedules.js';
import type { Store } from '../engine/store/store.js';
import type { LastScheduledBuild, ResolvedSource, ScheduleActivities, ScheduleSource } from '../workflows/scheduleTypes.js';
import { openLease } from '../engine/store/leases.js';
import { buildIdOf } from './cache.js';
import { guarded } from './guarded.js';
import type { ActivityDeps } from './index.js';

export function createScheduleActivities({ store, allowFileGit, remote }: ActivityDeps): ScheduleActivities {
  return {
    resolveScheduleSource: (source: ScheduleSource) =>
      guarded(
        async (): Promise<ResolvedSource> => {
          // What is packed is held from the store's GC until the run's build takes it up.
          const lease = await openLease(store.root, buildIdOf());
          try {
            const resolved = await resolveSource(store, source, allowFileGit ?? false);
            await lease.add({ blobs: [resolved.contextDigest, resolved.dockerfileDigest] });
            // The run's steps may go to workers on other machines (engine/remote/).
            await remote?.putBlobs(store, [resolved.contextDigest, resolved.dockerfileDigest]);
            return resolved;
          } finally {
            await lease.close();
          }
        },
        { heartbeat: true },
      ),

    lastScheduledBuild: (scheduleId: string) => guarded(async () => (await readScheduleState<LastScheduledBuild>(store.root, scheduleId)) ?? null),

    recordScheduledBuild: ({ scheduleId, build }) => guarded(() => writeScheduleState(store.root, scheduleId, build)),
  };
}

async function resolveSource(store: Store, source: ScheduleSource, allowFileGit: boolean): Promise<ResolvedSource> {
  switch (source.kind) {
    case 'snapshot':
      return { contextDigest: source.contextDigest, dockerfileDigest: source.dockerfileDigest, dockerfileName: source.dockerfileName };
    case 'dir':
      return packDirectory(store, source.dir, source.dockerfile ?? path.join(source.dir, 'Dockerfile'), source.dockerfile !== undefined);
    case 'git':
      return cloneAndPack(store, source.url, source.dockerfile, allowFileGit);
  }
}

/**
 * Packs `dir` and the Dockerfile into the store. Its .dockerignore applies, or, for a Dockerfile
 * given with -f, DOCKERFILE.dockerignore when there is one (as `strata build`).
 */
async function packDirectory(store: Store, dir: string, dockerfilePath: string, namedDockerfile: boolean): Promise<ResolvedSource> {
  const st = await fs.stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new UserInputError('SCHEDULE_SOURCE', `schedule source: ${dir} is not a directory on worker ${os.hostname()}`);
  const text = await fs.readFile(dockerfilePath).catch((e: NodeJS.ErrnoException) => {
    throw new UserInputError('SCHEDULE_SOURCE', `schedule source: cannot read Dockerfile ${dockerfilePath}: ${e.code ?? e.message}`);
  });
  const filter = makeFilter(await readDockerignore(dir, namedDockerfile ? dockerfilePath : undefined));
  const context = await store.putBlobStream(packContext(dir, filter));
  const stored = await store.putBlob(text);
  return { contextDigest: context.digest, dockerfileDigest: stored.digest, dockerfileName: path.basename(dockerfilePath) };
}

/**
 * Clones `url` (`REMOTE#REF:SUBDIR`) and packs the checkout. Every file's time is set to the
 * commit's, so the same commit always gives the same context digest (a clone's files are
 * as new as the clone).
 */
async function cloneAndPack(store: Store, url: string, dockerfile: string | undefined, allowFileGit: boolean): Promise<ResolvedSource> {
  const source = classifyAddSource(url);
  if (source?.kind !== 'git') throw new UserInputError('SCHEDULE_SOURCE', `schedule source: ${url} is not a git URL`);
  if (source.local && !allowFileGit) {
    throw new UserInputError('SCHEDULE_SOURCE', `schedule source: ${url} reads the worker's disk; the worker allows file:// git sources only with STRATA_ALLOW_FILE_GIT=1`);
  }
  const tmp = await store.makeTempDir('schedule-git');
  try {
    const repo = path.join(tmp, 'repo');
    // A schedule's source is fetched before its build holds any entitlement: it may not come
    // from this host or a denied network, whatever the schedule's --allow (a repository on
    // the worker's disk is file:// with STRATA_ALLOW_FILE_GIT).
    const contextDir = await cloneGit(source, repo, true, { allowHost: false }).catch((err: unknown) => {
      // cloneGit speaks for ADD; here the clone is the schedule's source.
      if (err instanceof EngineError)
        throw new EngineError(err.code, err.message.replace(/^ADD failed: /, 'schedule source: ').replace(/; that needs the network\.host entitlement.*$/, ''), {
          cause: err,
          userError: err.userError,
        });
      throw err;
    });
    const git = async (args: string[]) => (await execa('git', args, { cwd: repo, stdin: 'ignore' })).stdout.trim();
    const revision = await git(['rev-parse', 'HEAD']);
    const commitTime = Number(await git(['log', '-1', '--format=%ct']));
    await fs.rm(path.join(repo, '.git'), { recursive: true, force: true });
    await setTimes(repo, commitTime);
    // -f names a file inside the checkout: a symlink in the repository cannot lead out.
    const dockerfilePath = await resolveInRoot(contextDir, dockerfile ?? 'Dockerfile', { followFinal: true });
    const packed = await packDirectory(store, contextDir, dockerfilePath, dockerfile !== undefined);
    return { ...packed, dockerfileName: path.basename(dockerfile ?? 'Dockerfile'), revision };
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/** Sets the times of everything under `dir` (symlinks themselves, not their targets). */
async function setTimes(dir: string, seconds: number): Promise<void> {
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) await setTimes(p, seconds);
    await fs.lutimes(p, seconds, seconds);
  }
  await fs.lutimes(dir, seconds, seconds);
}
