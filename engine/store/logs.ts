// Where a build's step output is kept whole: $STRATA_HOME/logs/<build ID>/step-<N>.log.
import path from 'node:path';
import { UserInputError } from '../errors.js';

export function buildLogDir(root: string, buildId: string): string {
  // A build ID is a workflow ID, which anyone who reaches Temporal picks: `..` must not climb.
  if (!/^[\w.-]+$/.test(buildId) || /^\.+$/.test(buildId)) throw new UserInputError('INVALID_BUILD_ID', `build log: invalid build ID ${JSON.stringify(buildId)}`);
  return path.join(root, 'logs', buildId);
}

export function stepLogPath(root: string, buildId: string, step: number): string {
  return path.join(buildLogDir(root, buildId), `step-${step}.log`);
}
