// Renders a build's progress like docker's classic builder: `Step N/M : …`, ` ---> id`.
import type { BuildProgress } from '../workflows/types.js';

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
      // docker's classic builder prints a hit so, then the step's image ID (here its layer's, or
      // the step's cache key for a step that made no layer).
      if (s.status === 'done' && s.cached) this.write(' ---> Using cache');
      if (s.status === 'done' && s.layer) this.write(` ---> ${s.layer}`);
      this.nextStep = s.number + 1;
    }
  }
}
