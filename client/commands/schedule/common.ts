// What the schedule commands share: which schedules are strata's, what `ls` reads from a
// schedule's memo, and a run's result as one line.
import { WorkflowFailedError, type Client } from '@temporalio/client';
import type { ScheduledBuildResult, ScheduleWhen } from '../../../workflows/scheduleTypes.js';

/** The workflow a strata schedule starts: other schedules on the server are not ours. */
export const WORKFLOW_TYPE = 'scheduledBuild';

/** What `ls` shows without reading each schedule's action: kept in the schedule's memo. */
export interface ScheduleMemo {
  spec: string;
  source: string;
  when: ScheduleWhen;
  tags: string[];
}

/** One run's result as a line: `built ID …`, `skipped: …`, `failed: …`, or its status. */
export async function runOutcome(client: Client, workflowId: string, runId: string): Promise<string> {
  const handle = client.workflow.getHandle(workflowId, runId);
  const status = (await handle.describe()).status.name;
  if (status === 'RUNNING') return 'running';
  if (status !== 'COMPLETED' && status !== 'FAILED') return status.toLowerCase();
  try {
    return formatResult((await handle.result()) as ScheduledBuildResult);
  } catch (err) {
    return `failed: ${failureMessage(err)}`;
  }
}

export function formatResult(r: ScheduledBuildResult): string {
  const at = r.revision ? ` at ${r.revision.slice(0, 12)}` : '';
  if (r.outcome === 'skipped') return `skipped: ${r.reason}${at} (image ${r.imageId.slice(7, 19)})`;
  const pushed = r.pushed?.length ? `, pushed ${r.pushed.map((p) => `${p.reference}@${p.digest}`).join(', ')}` : '';
  return `built ${r.imageId.slice(7, 19)}${at}${r.tags.length ? ` (${r.tags.join(', ')})` : ''} by ${r.buildId}${pushed}`;
}

export function failureMessage(err: unknown): string {
  if (err instanceof WorkflowFailedError) return err.cause?.message ?? err.message;
  return err instanceof Error ? err.message : String(err);
}
