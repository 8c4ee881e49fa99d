// `strata builds ls`: this store's builds from Temporal's visibility (all with --all), newest first.
import { storeId } from '../../../engine/store/identity.js';
import { SCHEDULE_ATTRIBUTE_NAME, STATUS_ATTRIBUTE, STORE_ATTRIBUTE, TAGS_ATTRIBUTE } from '../../../workflows/searchAttributes.js';
import type { BuildStatus } from '../../../workflows/types.js';
import { UsageError } from '../../errors.js';
import { formatDuration, printTable } from '../../format.js';
import { normalizeTag } from '../../options.js';
import { withSession } from '../../session.js';
import { BUILD_STATUSES, statusOf } from './status.js';

export interface ListOptions {
  /** Every store's builds, not only this one's. */
  all?: boolean;
  tag?: string;
  status?: string;
  schedule?: string;
}

/** A visibility query string literal. */
function literal(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/**
 * The visibility query `strata builds ls` sends. `store`: only the builds clients of that
 * store started (a shared server runs other stores' builds, whose logs and images this store
 * does not have).
 */
export function listQuery(opts: ListOptions, store?: string): string {
  const terms = [`WorkflowType = 'buildImage'`];
  if (store !== undefined && !opts.all) terms.push(`${STORE_ATTRIBUTE.name} = ${literal(store)}`);
  if (opts.tag) terms.push(`${TAGS_ATTRIBUTE.name} = ${literal(normalizeTag(opts.tag, '--tag'))}`);
  if (opts.status) {
    if (!BUILD_STATUSES.includes(opts.status as BuildStatus)) throw new UsageError(`builds ls: --status must be one of ${BUILD_STATUSES.join(', ')}`);
    terms.push(`${STATUS_ATTRIBUTE.name} = ${literal(opts.status)}`);
    // A run ended by a Reset or a terminate keeps the status it last set.
    if (opts.status === 'running' || opts.status === 'waiting') terms.push(`ExecutionStatus = 'Running'`);
  }
  if (opts.schedule) terms.push(`${SCHEDULE_ATTRIBUTE_NAME} = ${literal(opts.schedule)}`);
  return terms.join(' AND ');
}

export async function runBuildsLs(opts: ListOptions): Promise<void> {
  await withSession(async (s) => {
    const query = listQuery(opts, await storeId(s.store));
    const rows = [['BUILD ID', 'STATUS', 'STARTED', 'DURATION', 'TAGS']];
    for await (const info of s.client.workflow.list({ query })) {
      const end = info.closeTime ?? new Date();
      rows.push([
        info.workflowId,
        statusOf(info),
        info.startTime.toISOString().replace(/\.\d+Z$/, 'Z'),
        formatDuration(end.getTime() - info.startTime.getTime()),
        (info.typedSearchAttributes.get(TAGS_ATTRIBUTE) ?? []).join(','),
      ]);
    }
    printTable(rows);
  });
}
