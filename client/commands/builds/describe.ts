// `strata builds describe BUILD`: status, timings, steps and the image of one build.
import { CONTEXT_ATTRIBUTE, SCHEDULE_ATTRIBUTE_NAME, TAGS_ATTRIBUTE } from '../../../workflows/searchAttributes.js';
import type { BuildResult } from '../../../workflows/types.js';
import { UsageError } from '../../errors.js';
import { answeredProgress, buildUrl } from '../../follow.js';
import { formatDuration } from '../../format.js';
import { withSession } from '../../session.js';
import { statusOf } from './status.js';

export async function runBuildsDescribe(id: string): Promise<void> {
  const out = (line: string) => console.log(line);
  await withSession(async (s) => {
    const handle = s.client.workflow.getHandle(id);
    const info = await handle.describe().catch(() => {
      throw new UsageError(`builds describe: no build ${id} on ${s.target.address}`);
    });
    const p = await answeredProgress(s, handle);
    out(`Build:     ${id}`);
    out(`Status:    ${statusOf(info)}${p.phase === 'waiting' && p.waitingUntil ? ` (a step failed; waiting for retry or abort until ${p.waitingUntil})` : ''}`);
    out(`Started:   ${info.startTime.toISOString()}`);
    if (info.closeTime) out(`Ended:     ${info.closeTime.toISOString()} (${formatDuration(info.closeTime.getTime() - info.startTime.getTime())})`);
    const tags = info.typedSearchAttributes.get(TAGS_ATTRIBUTE) ?? [];
    if (tags.length > 0) out(`Tags:      ${tags.join(', ')}`);
    out(`Context:   ${info.typedSearchAttributes.get(CONTEXT_ATTRIBUTE) ?? '?'}`);
    const schedule = info.searchAttributes[SCHEDULE_ATTRIBUTE_NAME]?.[0];
    if (schedule) out(`Schedule:  ${String(schedule)}`);
    if (info.status.name === 'COMPLETED') {
      const r = (await handle.result()) as BuildResult;
      out(`Image ID:  ${r.imageId}`);
      for (const o of r.outputs) out(`Saved to:  ${o}`);
    }
    if ((p.retries ?? 0) > 0) out(`Retries:   ${p.retries}`);
    out('Steps:');
    for (const st of [...p.steps].sort((a, b) => a.number - b.number)) {
      const took = st.cached ? 'cached' : st.startedAt && st.endedAt ? formatDuration(Date.parse(st.endedAt) - Date.parse(st.startedAt)) : '';
      const runs = (st.runs ?? 0) > 1 ? ` runs=${st.runs}` : '';
      out(`  ${String(st.number).padStart(2)}  ${st.status.padEnd(7)}  ${took.padStart(6)}  ${st.text}${st.layer ? `  ---> ${st.layer}` : ''}${runs}`);
      if (st.error) out(`      error: ${st.error}`);
    }
    if (s.target.uiUrl) out(`Web UI:    ${buildUrl(s.target, id)}`);
  });
}
