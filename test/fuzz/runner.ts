// Runs fuzz cases in a worker thread and watches it: a case that runs longer than the per-case
// bound is a hang (the thread is stopped and the run goes on after it), a thread that dies
// (out of memory, an exception that escaped) is a crash. Used by test/unit/fuzz.test.ts and
// scripts/fuzz.mjs.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { fuzzCase, loadCorpus } from './generate.js';
import type { CaseOutcome } from './worker.js';

export interface FuzzOptions {
  seed: number;
  count: number;
  /** Stop starting cases after this long (the report says how many ran). */
  timeBudgetMs: number;
  /** A case running longer is a hang. */
  caseTimeoutMs: number;
  /** The repository root (for the corpus). */
  repo: string;
  /** Heap of the worker thread: a case that needs more is a crash. */
  heapMb?: number;
}

export interface FuzzFinding {
  index: number;
  kind: 'crash' | 'hang';
  detail: string;
  /** The case's Dockerfile, cut short. */
  dockerfile: string;
}

export interface FuzzReport {
  seed: number;
  cases: number;
  /** `ok` and each engine error code, with its count. */
  outcomes: Record<string, number>;
  findings: FuzzFinding[];
  slowest: { index: number; ms: number };
  elapsedMs: number;
}

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker.js');

export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const report: FuzzReport = { seed: opts.seed, cases: 0, outcomes: {}, findings: [], slowest: { index: -1, ms: 0 }, elapsedMs: 0 };
  const started = Date.now();
  const corpus = loadCorpus(opts.repo);
  const finding = (index: number, kind: FuzzFinding['kind'], detail: string) => {
    const { dockerfile } = fuzzCase(opts.seed, index, corpus);
    report.findings.push({ index, kind, detail, dockerfile: dockerfile.length > 600 ? `${dockerfile.slice(0, 600)}…(${dockerfile.length} chars)` : dockerfile });
  };
  let next = 0;
  while (next < opts.count && Date.now() - started < opts.timeBudgetMs) {
    next = await new Promise<number>((resolve) => {
      const worker = new Worker(WORKER, {
        workerData: { seed: opts.seed, from: next, to: opts.count, repo: opts.repo },
        resourceLimits: { maxOldGenerationSizeMb: opts.heapMb ?? 512 },
      });
      let current = next;
      let caseStarted = Date.now();
      let settled = false;
      const finish = (resumeAt: number) => {
        if (settled) return;
        settled = true;
        clearInterval(watchdog);
        void worker.terminate();
        resolve(resumeAt);
      };
      const watchdog = setInterval(() => {
        if (Date.now() - caseStarted > opts.caseTimeoutMs) {
          finding(current, 'hang', `still running after ${opts.caseTimeoutMs} ms`);
          report.cases++;
          finish(current + 1);
        } else if (Date.now() - started > opts.timeBudgetMs) {
          finish(opts.count);
        }
      }, 50);
      worker.on('message', (m: { type: 'start' | 'done' | 'end'; index: number; outcome: CaseOutcome; ms: number }) => {
        if (m.type === 'start') {
          current = m.index;
          caseStarted = Date.now();
        } else if (m.type === 'done') {
          report.cases++;
          const key = m.outcome.kind === 'ok' ? 'ok' : m.outcome.kind === 'error' ? m.outcome.code : 'crash';
          report.outcomes[key] = (report.outcomes[key] ?? 0) + 1;
          if (m.outcome.kind === 'crash') finding(m.index, 'crash', m.outcome.detail);
          if (m.ms > report.slowest.ms) report.slowest = { index: m.index, ms: Math.round(m.ms) };
        } else {
          finish(opts.count);
        }
      });
      worker.on('error', (err) => {
        finding(current, 'crash', `the worker thread died: ${err.stack ?? err.message}`);
        report.cases++;
        finish(current + 1);
      });
      worker.on('exit', () => finish(opts.count));
    });
  }
  report.elapsedMs = Date.now() - started;
  return report;
}
