// `strata server status`: which server strata uses and whether it answers (exit 3 if not).
import { Store } from '../../../engine/store/store.js';
import { serverStatus } from '../../../worker/temporal.js';

export async function runServerStatus(): Promise<number> {
  const store = await Store.open();
  const s = await serverStatus(store.root);
  console.log(`address: ${s.target.address} (${s.target.embedded ? 'embedded' : 'TEMPORAL_ADDRESS'})`);
  console.log(`reachable: ${s.reachable ? 'yes' : 'no'}`);
  if (s.state) console.log(`embedded server: pid ${s.state.pid}, Web UI http://127.0.0.1:${s.state.uiPort}, db ${s.state.db}`);
  else if (s.target.embedded) console.log('embedded server: not started by this store');
  return s.reachable ? 0 : 3;
}
