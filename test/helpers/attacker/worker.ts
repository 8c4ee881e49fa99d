// The attacker's worker (`node worker.js QUEUE`): polls QUEUE for the callActivity workflow,
// as anyone who reaches Temporal could. Prints "attacker polling" once it polls.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeConnection, Runtime, DefaultLogger, Worker } from '@temporalio/worker';

const queue = process.argv[2]!;
Runtime.install({ logger: new DefaultLogger('ERROR') });
const connection = await NativeConnection.connect({ address: `127.0.0.1:${process.env.STRATA_TEMPORAL_PORT}` });
const worker = await Worker.create({
  connection,
  taskQueue: queue,
  workflowsPath: path.join(path.dirname(fileURLToPath(import.meta.url)), 'workflows.js'),
});
process.on('SIGTERM', () => worker.shutdown());
console.log('attacker polling');
await worker.run();
await connection.close();
