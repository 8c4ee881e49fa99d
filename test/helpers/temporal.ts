// Reads what the test environment's Temporal server recorded of a build.
import { Client, Connection } from '@temporalio/client';

/** The attempt number of every started activity of a workflow, in history order. */
export async function activityAttempts(workflowId: string): Promise<{ type: string; attempt: number }[]> {
  const connection = await Connection.connect({ address: `127.0.0.1:${process.env.STRATA_TEMPORAL_PORT}` });
  try {
    const history = await new Client({ connection }).workflow.getHandle(workflowId).fetchHistory();
    const types = new Map<string, string>();
    const out: { type: string; attempt: number }[] = [];
    for (const e of history.events ?? []) {
      const scheduled = e.activityTaskScheduledEventAttributes;
      if (scheduled) types.set(String(e.eventId), scheduled.activityType?.name ?? '');
      const started = e.activityTaskStartedEventAttributes;
      if (started) out.push({ type: types.get(String(started.scheduledEventId)) ?? '', attempt: started.attempt ?? 0 });
    }
    return out;
  } finally {
    await connection.close();
  }
}
