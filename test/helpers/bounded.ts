// Runs a piece of code in a child node with a small heap, so a test can show that hostile
// input ends in a clear error with bounded memory (an unbounded case dies of heap exhaustion
// there instead of taking the test runner down).
import { execa } from 'execa';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/, where compiled modules are imported from. */
export const DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface BoundedResult {
  exitCode: number;
  /** What the code printed on stdout (its last line is usually the JSON outcome). */
  stdout: string;
  stderr: string;
}

/**
 * Runs `body` (the inside of an async ES module; `DIST` holds the dist directory) in
 * `node --max-old-space-size=MB`. Killed after `timeoutMs`.
 */
export async function runBounded(body: string, opts: { heapMb?: number; timeoutMs?: number } = {}): Promise<BoundedResult> {
  const code = `const DIST = ${JSON.stringify(DIST)};\n${body}`;
  // The code goes on stdin: a Dockerfile in it may be larger than one argument can be.
  const r = await execa('node', [`--max-old-space-size=${opts.heapMb ?? 256}`, '--input-type=module', '-'], {
    input: code,
    reject: false,
    timeout: opts.timeoutMs ?? 60_000,
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** The outcome a bounded body prints: `outcome(promise)` resolves to this as the last stdout line. */
export const OUTCOME_HELPER = `
async function outcome(p) {
  try {
    const v = await p;
    console.log(JSON.stringify({ ok: true, size: JSON.stringify(v).length, rss: process.memoryUsage().rss }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, name: e.constructor.name, code: e.code, message: String(e.message).slice(0, 500), rss: process.memoryUsage().rss }));
  }
}
`;

export interface Outcome {
  ok: boolean;
  name?: string;
  code?: string;
  message?: string;
  size?: number;
  rss: number;
}

export function lastOutcome(r: BoundedResult): Outcome {
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Outcome;
  } catch {
    throw new Error(`the bounded child printed no outcome (exit ${r.exitCode}):\nstdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-2000)}`);
  }
}
