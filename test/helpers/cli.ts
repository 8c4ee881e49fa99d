// Runs the real `strata` CLI as a user would, against the test environment's store and server.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type Options } from 'execa';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const STRATA_BIN = path.join(REPO_ROOT, 'bin', 'strata.js');

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function strata(args: string[], opts: Options = {}): Promise<RunResult> {
  const r = await execa('node', [STRATA_BIN, ...args], { reject: false, all: false, ...opts, env: { ...process.env, ...(opts.env ?? {}) } });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Like strata(), but a non-zero exit fails the test with everything the CLI printed. */
export async function strataOk(args: string[], opts: Options = {}): Promise<RunResult> {
  const r = await strata(args, opts);
  if (r.exitCode !== 0) throw new Error(`strata ${args.join(' ')} exited ${r.exitCode}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r;
}
