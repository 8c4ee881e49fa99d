// Renders a build's progress like docker's classic builder: `Step N/M : …`, then ` ---> ID`
// with the step's time (docker prints none; BuildKit prints `DONE 0.4s`): ` ---> ID (0.4s)`.
import type { BuildProgress, StepProgress } from '../workflows/types.js';

export class ProgressPrinter {
  private nextStep = 1;
  private headerShown = new Set<number>();
  private warningsShown = false;

  constructor(
    private readonly write: (line: string) => void,
    /** Called when a step ends, before its ` ---> id` line: prints the rest of its output. */
    private readonly onStepEnd: (step: number) => void = () => undefined,
  ) {}

  /** The step whose output is being shown: the first one not yet finished. */
  current(): number {
    return this.nextStep;
  }

  /** Prints what is new since the last call, keeping steps in order. */
  render(p: BuildProgress): void {
    if (!this.warningsShown && p.warnings.length > 0) {
      for (const w of p.warnings) this.write(`[Warning] ${w}`);
      this.warningsShown = true;
    }
    const steps = [...p.steps].sort((a, b) => a.number - b.number);
    for (const s of steps) {
      if (s.number < this.nextStep) continue;
      if (s.status === 'pending') break;
      if (!this.headerShown.has(s.number)) {
        this.write(`Step ${s.number}/${p.totalSteps} : ${s.text}`);
        this.headerShown.add(s.number);
      }
      if (s.status === 'running') break;
      this.onStepEnd(s.number);
      // docker's classic builder prints a hit so, then the image after the step; builds that
      // predate step images show the step's layer.
      if (s.status === 'done' && s.cached) this.write(' ---> Using cache');
      const id = s.image ?? s.layer;
      if (s.status === 'done' && id) this.write(` ---> ${id}${stepTime(s, ' (%s)')}`);
      this.nextStep = s.number + 1;
    }
  }
}

/** How long a step took (workflow time: from scheduling it to seeing it end), in `format`'s %s; '' when unknown. */
export function stepTime(s: Pick<StepProgress, 'startedAt' | 'endedAt'>, format = '%s', now?: number): string {
  if (!s.startedAt) return '';
  const end = s.endedAt ? Date.parse(s.endedAt) : now;
  if (end === undefined) return '';
  return format.replace('%s', formatSeconds(end - Date.parse(s.startedAt)));
}

/** BuildKit's form: 0.4s, 12.3s, 125.0s. */
export function formatSeconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
}
