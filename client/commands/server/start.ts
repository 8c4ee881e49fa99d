// `strata server start`: the embedded Temporal dev server, in the background.
import { Store } from '../../../engine/store/store.js';
import { configuredTarget, startServer } from '../../../worker/temporal.js';
import { UsageError } from '../../errors.js';

export async function runServerStart(): Promise<void> {
  const store = await Store.open();
  if (!configuredTarget().embedded) throw new UsageError('server start: TEMPORAL_ADDRESS is set, so strata uses that server');
  const state = await startServer(store.root, (m) => console.error(m));
  console.log(`Temporal server running: 127.0.0.1:${state.port} (pid ${state.pid}), Web UI http://127.0.0.1:${state.uiPort}`);
}
