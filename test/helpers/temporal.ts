// Reads what the test environment's Temporal server recorded of a build.
import { Client, Connection } from '@temporalio/client';

/**
 * The server a test's CLI and workers use: TEMPORAL_ADDRESS's when the test file sets it (a
 * server of its own, test/helpers/temporalPostgres.ts), else the test environment's dev server.
 */
export function testTemporalAddress(): string {
  return process.env.TEMPORAL_ADDRESS || `127.0.0.1:${process.env.STRATA_TEMPORAL_PORT}`;
}

/** The attempt number of every started activity of a workflow, in history order. */
export async function activityAttempts(workflowId: string): Promise<{ type: string; attempt: number }[]> {
  const connection = await Connection.connect({ address: testTemporalAddress() });
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

/**
 * How many times each step's activity started in the build's newest run, by step number
 * (read from the scheduled activities' recorded inputs). A Reset's new run carries the events
 * before its reset point, so a step finished before it counts once.
 */
export async function stepStarts(workflowId: string): Promise<Map<number, number>> {
  const connection = await Connection.connect({ address: testTemporalAddress() });
  try {
    const client = new Client({ connection });
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const converter = client.options.loadedDataConverter.payloadConverter;
    const stepOf = new Map<string, number>();
    const out = new Map<number, number>();
    for (const e of history.events ?? []) {
      const scheduled = e.activityTaskScheduledEventAttributes;
      const payload = scheduled?.input?.payloads?.[0];
      if (payload) {
        const input = converter.fromPayload<{ step?: { number?: number } }>(payload);
        if (typeof input?.step?.number === 'number') stepOf.set(String(e.eventId), input.step.number);
      }
      const started = e.activityTaskStartedEventAttributes;
      const n = started ? stepOf.get(String(started.scheduledEventId)) : undefined;
      if (n !== undefined) out.set(n, (out.get(n) ?? 0) + 1);
    }
    return out;
  } finally {
    await connection.close();
  }
}

/** IDs of the workflows started on a task queue (TaskQueue is a built-in search attribute). */
export async function workflowsOnQueue(queue: string): Promise<string[]> {
  const connection = await Connection.connect({ address: testTemporalAddress() });
  try {
    const ids: string[] = [];
    for await (const info of new Client({ connection }).workflow.list({ query: `TaskQueue = '${queue}'` })) ids.push(info.workflowId);
    return ids;
  } finally {
    await connection.close();
  }
}
