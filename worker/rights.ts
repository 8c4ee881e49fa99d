// What a worker lets the builds it runs do beyond building, read from `strata worker`'s flags
// and environment. Each opens something to anyone who can start a workflow on its task queue
// (docs/security.md); all are off unless the operator turns them on. The worker that
// `strata build` runs in its own process gets none: it serves the whole queue while it runs,
// not only the user's build, and the CLI writes that build's outputs and pushes it itself.
import { promises as fs } from 'node:fs';
import path from 'node:path';

export interface WorkerRights {
  /** Builds may have the worker write `--output` files under this directory (STRATA_OUTPUT_DIR). */
  outputDir?: string;
  /** Builds may push with the worker's registry credentials (--allow-push, STRATA_ALLOW_PUSH=1). */
  allowPush?: boolean;
  /** Schedules may pack directories under this one (STRATA_SOURCE_DIR). */
  sourceDir?: string;
  /** ADD and schedules may clone file:// git repositories of the worker's disk (STRATA_ALLOW_FILE_GIT=1). */
  allowFileGit?: boolean;
}

const truthy = (v: string | undefined) => v === '1' || v === 'true';

/** The rights `strata worker` was given. Throws when a named directory does not exist. */
export async function workerRights(opts: { allowPush?: boolean }, env: NodeJS.ProcessEnv = process.env): Promise<WorkerRights> {
  return {
    outputDir: await directory(env.STRATA_OUTPUT_DIR, 'STRATA_OUTPUT_DIR'),
    allowPush: opts.allowPush === true || truthy(env.STRATA_ALLOW_PUSH),
    sourceDir: await directory(env.STRATA_SOURCE_DIR, 'STRATA_SOURCE_DIR'),
    allowFileGit: truthy(env.STRATA_ALLOW_FILE_GIT),
  };
}

async function directory(value: string | undefined, name: string): Promise<string | undefined> {
  if (!value) return undefined;
  const dir = path.resolve(value);
  const st = await fs.stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new Error(`strata worker: ${name}=${value} is not a directory`);
  return dir;
}

/** One line for the worker's banner: what it allows. */
export function describeRights(r: WorkerRights): string {
  const parts = [
    r.outputDir ? `outputs under ${r.outputDir}` : 'no outputs',
    r.allowPush ? 'pushes allowed' : 'no pushes',
    ...(r.sourceDir ? [`schedule dirs under ${r.sourceDir}`] : []),
    ...(r.allowFileGit ? ['file:// git allowed'] : []),
  ];
  return parts.join(', ');
}
