// How a followed build is shown (`--progress`): docker's classic lines (plain), a live view
// redrawn in place (tty), or nothing but the image ID (quiet). Errors go to stderr in every mode.
import type { PushProgress } from '../engine/registry/push.js';
import type { BuildProgress, BuildResult } from '../workflows/types.js';
import { formatSize, printBuildResult } from './format.js';
import { OutputStreamer, type ActivityBeat } from './output.js';
import { ProgressPrinter } from './progress.js';
import { TtyView } from './tty.js';
import { UsageError } from './errors.js';

export type ProgressMode = 'plain' | 'tty' | 'quiet';

/** The build being followed: where its heartbeats and logs are read. */
export interface BuildSource {
  workflowId: string;
  storeRoot: string;
  /** The newest heartbeat of each of its running activities (through Temporal, or the background worker). */
  beats(): Promise<ActivityBeat[]>;
}

export interface BuildView {
  /** A line for the user (the build ID …), above any live area; nothing when quiet. */
  note(line: string): void;
  /** The context being packed into the store: bytes so far, `done` once stored. */
  context(bytes: number, done: boolean): void;
  /** The build started: progress comes from it from now on. */
  follow(source: BuildSource): void;
  /** The build's newest progress; the view may read its running activities' heartbeats. */
  update(p: BuildProgress): Promise<void>;
  /** Following ends (the build ended, or waits): the view prints what it has left. */
  end(p: BuildProgress | undefined): void;
  /** This client pushes the built image (after `end`): how far the upload got. */
  pushing(p: PushProgress): void;
  /** The build's result, as the mode shows it. */
  succeeded(r: BuildResult): void;
}

/** `--progress` (auto: tty when stdout is a terminal, else plain), or quiet for `-q`. */
export function progressMode(flag: string | undefined, quiet: boolean | undefined, out: NodeJS.WriteStream = process.stdout): ProgressMode {
  if (quiet) {
    if (flag !== undefined && flag !== 'quiet' && flag !== 'auto') throw new UsageError(`build: -q and --progress=${flag} contradict each other`);
    return 'quiet';
  }
  const mode = flag ?? 'auto';
  if (mode === 'auto') return out.isTTY && process.env.TERM !== 'dumb' ? 'tty' : 'plain';
  if (mode === 'plain' || mode === 'tty' || mode === 'quiet') return mode;
  throw new UsageError(`--progress: expected auto, plain, tty or quiet, got ${JSON.stringify(mode)}`);
}

export function openView(mode: ProgressMode, out: NodeJS.WriteStream = process.stdout): BuildView {
  if (mode === 'tty') return new TtyView(out);
  if (mode === 'quiet') return new QuietView((line) => out.write(line + '\n'));
  return new PlainView(out);
}

/** docker's classic builder's output: Step rows, RUN output as it comes, ` ---> ID (time)`. */
class PlainView implements BuildView {
  private stream?: OutputStreamer;
  private source?: BuildSource;
  private readonly printer: ProgressPrinter;
  private readonly write: (line: string) => void;

  constructor(private readonly out: NodeJS.WriteStream) {
    this.write = (line) => out.write(line + '\n');
    this.printer = new ProgressPrinter(this.write, (step) => this.source && this.stream?.flushFromLog(this.source.storeRoot, step));
  }
  note(line: string): void {
    this.write(line);
  }
  context(bytes: number, done: boolean): void {
    if (done) this.write(`Sending build context to strata  ${formatSize(bytes)}`);
  }
  follow(source: BuildSource): void {
    this.source = source;
    this.stream = new OutputStreamer(
      () => source.beats(),
      source.workflowId,
      (text) => this.out.write(text),
    );
  }
  async update(p: BuildProgress): Promise<void> {
    this.printer.render(p);
    const running = p.steps.find((st) => st.status === 'running' && st.number === this.printer.current());
    if (running) await this.stream?.poll(running.number);
  }
  end(p: BuildProgress | undefined): void {
    if (p) this.printer.render(p);
  }
  pushing(): void {}
  succeeded(r: BuildResult): void {
    printBuildResult(r, this.write);
  }
}

/** `-q`: the image ID alone on stdout, for scripts. */
class QuietView implements BuildView {
  constructor(private readonly write: (line: string) => void) {}
  note(): void {}
  context(): void {}
  follow(): void {}
  async update(): Promise<void> {}
  end(): void {}
  pushing(): void {}
  succeeded(r: BuildResult): void {
    this.write(r.imageId);
  }
}
