// strata's version and the versions it is made of, for `--version` and `strata version`.
import { createRequire } from 'node:module';
import { TEMPORAL_CLI_VERSION } from '../worker/temporalVersion.js';

const require = createRequire(import.meta.url);

/** strata's own version (package.json; this file runs from dist/client/). */
export const STRATA_VERSION = (require('../../package.json') as { version: string }).version;
/** The Temporal TypeScript SDK strata runs on (client, worker and workflows share it). */
export const SDK_VERSION = (require('@temporalio/client/package.json') as { version: string }).version;

/** `strata --version`: one line, as `docker --version` prints one. */
export function versionLine(): string {
  return `strata version ${STRATA_VERSION}, Temporal TypeScript SDK ${SDK_VERSION}`;
}

/** `strata version`: the line, then what strata runs with. */
export function versionReport(): string[] {
  return [versionLine(), ` Temporal CLI (embedded server): ${TEMPORAL_CLI_VERSION}`, ` Node.js: ${process.version}`, ` Platform: ${process.platform}/${process.arch}`];
}
