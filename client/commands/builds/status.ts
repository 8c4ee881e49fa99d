// A build's status as `strata builds` shows and filters it.
import type { WorkflowExecutionInfo } from '@temporalio/client';
import { STATUS_ATTRIBUTE } from '../../../workflows/searchAttributes.js';
import type { BuildStatus } from '../../../workflows/types.js';

export const BUILD_STATUSES: BuildStatus[] = ['running', 'waiting', 'succeeded', 'failed', 'cancelled'];

/** The status a user means: ours while the run is open or ended by itself; Temporal's otherwise. */
export function statusOf(info: Pick<WorkflowExecutionInfo, 'status' | 'typedSearchAttributes'>): string {
  const ours = info.typedSearchAttributes.get(STATUS_ATTRIBUTE);
  if (info.status.name === 'RUNNING') return ours ?? 'running';
  if (info.status.name === 'COMPLETED') return 'succeeded';
  if (info.status.name === 'FAILED') return 'failed';
  if (info.status.name === 'CANCELLED') return 'cancelled';
  return info.status.name.toLowerCase().replace(/_/g, ' ');
}
