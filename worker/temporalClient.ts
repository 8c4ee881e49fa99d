// @temporalio/client and @temporalio/proto, loaded with require(): an ESM `import` of these
// CommonJS packages makes node scan their sources for named exports first, about a quarter of
// their load time, which every CLI command that talks to Temporal would pay. Types still come
// from `import type`.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const temporal = require('@temporalio/client') as typeof import('@temporalio/client');
export const temporalProto = require('@temporalio/proto') as typeof import('@temporalio/proto');
