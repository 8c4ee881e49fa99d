// The live view of a build on a terminal (`--progress=tty`, BuildKit's look): finished steps
// scroll up as lines of their own, and an area at the bottom is redrawn in place with the
// steps running now (several when stages run in parallel), the last lines of each RUN's
// output, COPY's bytes, the context upload and the push as they go.
import { readFileSync } from 'node:fs';
import { stepLogPath } from '../engine/store/logs.js';
import type { PushProgress } from '../engine/registry/push.js';
import type { BuildProgress, BuildResult, CopyHeartbeat, StepProgress } from '../workflows/types.js';
import { formatSize, printBuildResult } from './format.js';
import { formatSeconds, stepTime } from './progress.js';
import type { BuildSource, BuildView } from './view.js';

/** Lines of a running step's output shown under it. */
const TAIL_LINES = 6;
/** Heartbeats come once a second at most (RUN), so they are read no more often. */
const BEATS_EVERY_MS = 1000;
/** Redrawing more often than this only costs the terminal. */
const FRAME_MS = 100;

export class TtyView implements BuildView {
  private readonly started = Date.now();
  private source?: BuildSource;
  private progress?: BuildProgress;
  private contextState?: { bytes: number; done: boolean; endedAt?: number };
  private readonly queued: string[] = [];
  private readonly shown = new Set<number>();
  private warningsShown = false;
  /** The newest output of each running RUN step (its tail only) and where it ends. */
  private readonly output = new Map<number, { text: string; end: number }>();
  private readonly copies = new Map<number, CopyHeartbeat>();
  private push?: PushProgress;
  private lastBeats = 0;
  private lastFrame = 0;
  private liveLines = 0;
  private ended = false;
  /** A push bar is on the last line, without its newline. */
  private pushBar = false;

  constructor(private readonly out: NodeJS.WriteStream) {}

  note(line: string): void {
    this.queued.push(line);
    this.draw(true);
  }

  context(bytes: number, done: boolean): void {
    this.contextState = { bytes, done, endedAt: done ? Date.now() : undefined };
    if (done) this.queued.push(row(' => [internal] load build context', `${formatSize(bytes)}  ${formatSeconds(Date.now() - this.started)}`, this.width()));
    this.draw(done);
  }

  follow(source: BuildSource): void {
    this.source = source;
  }

  async update(p: BuildProgress): Promise<void> {
    this.progress = p;
    if (this.source && Date.now() - this.lastBeats >= BEATS_EVERY_MS) {
      this.lastBeats = Date.now();
      await this.readBeats(this.source);
    }
    this.settle(p);
    this.draw(false);
  }

  end(p: BuildProgress | undefined): void {
    if (this.ended) return;
    if (p) {
      this.progress = p;
      this.settle(p);
    }
    const q = this.progress;
    const count = q ? ` (${q.steps.filter((s) => s.status === 'done').length}/${q.totalSteps})` : '';
    this.queued.push(`[+] Building ${formatSeconds(Date.now() - this.started)}${count} ${q?.phase === 'done' ? 'FINISHED' : q?.phase === 'waiting' ? 'WAITING' : 'STOPPED'}`);
    this.ended = true;
    this.draw(true);
  }

  succeeded(r: BuildResult): void {
    printBuildResult(r, (line) => this.out.write(line + '\n'));
  }

  /** The client's own push, after the build: one bar redrawn in place until the next line. */
  pushing(p: PushProgress): void {
    const now = Date.now();
    if (now - this.lastFrame < FRAME_MS && p.bytes < p.size) return;
    this.lastFrame = now;
    this.out.write(`\r\x1b[K${pushRow(p, this.width())}`);
    this.pushBar = true;
  }

  /** Steps that ended since the last frame become lines of their own, in step order. */
  private settle(p: BuildProgress): void {
    if (!this.warningsShown && p.warnings.length > 0) {
      for (const w of p.warnings) this.queued.push(`[Warning] ${w}`);
      this.warningsShown = true;
    }
    for (const s of [...p.steps].sort((a, b) => a.number - b.number)) {
      if (this.shown.has(s.number) || (s.status !== 'done' && s.status !== 'failed')) continue;
      this.shown.add(s.number);
      this.output.delete(s.number);
      this.copies.delete(s.number);
      const id = s.image ?? s.layer;
      if (s.status === 'done') {
        // A step the instruction cache served says so, as buildkit's view does.
        this.queued.push(row(` => ${s.cached ? 'CACHED ' : ''}${label(s, p)}`, `${id ? `---> ${id}  ` : ''}${stepTime(s)}`, this.width()));
      } else {
        this.queued.push(row(` => ERROR ${label(s, p)}`, stepTime(s), this.width()));
        this.queued.push(...this.failedOutput(s, p));
      }
    }
  }

  /** BuildKit's error block: the step and the end of its output (from the store's log). */
  private failedOutput(s: StepProgress, p: BuildProgress): string[] {
    let lines: string[] = [];
    if (this.source) {
      try {
        lines = readFileSync(stepLogPath(this.source.storeRoot, this.source.workflowId, s.number), 'utf8').split('\n');
      } catch {
        lines = [];
      }
    }
    if (lines[lines.length - 1] === '') lines.pop();
    return ['------', ` > ${label(s, p)}:`, ...lines.slice(-20).map((l) => lastFrame(l)), '------'];
  }

  private async readBeats(source: BuildSource): Promise<void> {
    this.push = undefined;
    for (const a of await source.beats()) {
      if (a.kind === 'copy') this.copies.set(a.beat.step, a.beat);
      else if (a.kind === 'push') this.push = a.beat;
      else {
        const prev = this.output.get(a.beat.step);
        const end = a.beat.offset + Buffer.byteLength(a.beat.text);
        if (prev && end <= prev.end) continue;
        // Only the tail is ever shown: keep the last few KB.
        const text = ((prev && a.beat.offset <= prev.end ? prev.text : '') + a.beat.text).slice(-4096);
        this.output.set(a.beat.step, { text, end });
      }
    }
  }

  private width(): number {
    return Math.max(40, (this.out.columns || 80) - 1);
  }

  /** The part redrawn in place: what runs now, under a header with the time and the count. */
  private liveArea(): string[] {
    if (this.ended) return [];
    const w = this.width();
    const now = Date.now();
    const p = this.progress;
    const lines: string[] = [];
    const done = p ? p.steps.filter((s) => s.status === 'done').length : 0;
    lines.push(`[+] Building ${formatSeconds(now - this.started)}${p && p.totalSteps > 0 ? ` (${done}/${p.totalSteps})` : ''}`);
    const c = this.contextState;
    if (c && !c.done) lines.push(row(' => [internal] load build context', `${formatSize(c.bytes)}  ${formatSeconds(now - this.started)}`, w));
    if (!p) return lines;
    if (p.phase === 'planning') lines.push(' => planning');
    const rows = Math.max(6, (this.out.rows || 24) - 2);
    for (const s of p.steps.filter((x) => x.status === 'running')) {
      lines.push(row(` => ${label(s, p)}`, stepTime(s, '%s', now), w));
      const copy = this.copies.get(s.number);
      if (copy) lines.push(` => => copied ${copy.files} file${copy.files === 1 ? '' : 's'}, ${formatSize(copy.bytes)}`);
      const out = this.output.get(s.number);
      if (out && lines.length < rows) {
        const tail = out.text
          .split('\n')
          .map(lastFrame)
          .filter((l) => l.trim() !== '');
        for (const l of tail.slice(-TAIL_LINES)) lines.push(` => => # ${l}`);
      }
    }
    if (p.phase === 'committing') lines.push(' => committing');
    if (p.phase === 'saving') lines.push(' => saving');
    if (p.phase === 'pushing') lines.push(this.push ? pushRow(this.push, w) : ' => pushing');
    return lines.slice(0, rows).map((l) => fit(l, w));
  }

  /** Replaces the live area with the queued lines and a new live area. */
  private draw(force: boolean): void {
    const now = Date.now();
    if (!force && this.queued.length === 0 && now - this.lastFrame < FRAME_MS) return;
    this.lastFrame = now;
    let text = this.liveLines > 0 ? `\x1b[${this.liveLines}F\x1b[J` : '';
    if (this.pushBar) text += '\r\x1b[K';
    this.pushBar = false;
    for (const l of this.queued.splice(0)) text += fit(l, this.width()) + '\n';
    const live = this.liveArea();
    for (const l of live) text += l + '\n';
    this.liveLines = live.length;
    this.out.write(text);
  }
}

/** `[N/M] TEXT`, the step as BuildKit names it. */
function label(s: StepProgress, p: BuildProgress): string {
  return `[${s.number}/${p.totalSteps}] ${s.text.replace(/\s+/g, ' ')}`;
}

/** `left … right`, the right part at the end of the line, the left one cut to make room. */
function row(left: string, right: string, width: number): string {
  if (right === '') return fit(left, width);
  const room = width - right.length - 2;
  const l = [...left];
  const shown = l.length > room ? `${l.slice(0, Math.max(0, room - 1)).join('')}…` : left;
  return `${shown}${' '.repeat(Math.max(2, width - [...shown].length - right.length))}${right}`;
}

/** At most `width` characters: a longer line would wrap and break the count of lines to redraw. */
function fit(line: string, width: number): string {
  // Control characters (escapes a step prints among them) would move the cursor.
  const chars = [...line].filter((c) => c === '\t' || (c >= ' ' && c !== '\x7f'));
  return chars.length > width ? chars.slice(0, width).join('') : chars.join('');
}

/** What a terminal would show of a line a program redraws with `\r` (progress bars). */
function lastFrame(line: string): string {
  const parts = line.split('\r').filter((x) => x !== '');
  return parts[parts.length - 1] ?? '';
}

function pushRow(p: PushProgress, width: number): string {
  const right = `${formatSize(p.bytes)}/${formatSize(p.size)}`;
  const barWidth = Math.max(10, Math.min(40, width - right.length - 32));
  const filled = p.size > 0 ? Math.min(barWidth, Math.floor((p.bytes / p.size) * barWidth)) : barWidth;
  const bar = `[${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? '>' : ''}${' '.repeat(barWidth - filled)}]`;
  return ` => pushing ${p.digest.slice(7, 19)} ${bar} ${right}`;
}
