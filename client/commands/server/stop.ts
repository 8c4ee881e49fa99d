// `strata server stop`: stops the embedded server this store started.
import { Store } from '../../../engine/store/store.js';
import { stopServer } from '../../../worker/temporal.js';

export async function runServerStop(): Promise<void> {
  const store = await Store.open();
  console.log((await stopServer(store.root)) ? 'Temporal server stopped' : 'Temporal server was not running');
}
