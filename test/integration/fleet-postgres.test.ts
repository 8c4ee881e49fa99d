// The fleet on a Temporal server as a cluster runs it: the Temporal server v1.29.1 on
// PostgreSQL (test/helpers/temporalPostgres.ts) instead of the dev server. Three workers with
// three STRATA_HOMEs and a CLI with a fourth share a Debian docker-registry (STRATA_REMOTE);
// one is killed with SIGKILL in the middle of a RUN, another finishes the build, and the
// image ID is the one a single worker gives. PostgreSQL's own tables show where the build ran.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { execa } from 'execa';
import { STRATA_BIN, strata, strataOk } from '../helpers/cli.js';
import { fleetFixture, runningOn, stepAttempts } from '../helpers/fleet.js';
import { findContainer, until } from '../helpers/host.js';
import { startPostgresTemporal, type PostgresTemporal } from '../helpers/temporalPostgres.js';

const EPOCH = { SOURCE_DATE_EPOCH: '1700000000' };
const buildIdOf = (stdout: string) => /Build ID: (\S+)/.exec(stdout)?.[1];
const imageIdOf = (stdout: string) => /Successfully built ([0-9a-f]{12})/.exec(stdout)?.[1];

// Declared first, so its end (workers stopped) comes before the server's.
const fx = fleetFixture();
let server: PostgresTemporal | undefined;

beforeAll(async () => {
  const t0 = Date.now();
  server = await startPostgresTemporal();
  // The CLI and the workers this file starts use it (jest gives each file its own process.env).
  process.env.TEMPORAL_ADDRESS = server.address;
  process.stderr.write(`fleet-postgres: PostgreSQL and the Temporal server ready in ${Date.now() - t0} ms\n`);
}, 120_000);

afterAll(async () => {
  delete process.env.TEMPORAL_ADDRESS;
  await server?.stop();
});

test('on Temporal with PostgreSQL: a worker killed in the middle of a RUN, another ends the build with the image ID of a single worker', async () => {
  const m = randomBytes(4).toString('hex');
  const queue = `fleet-pg-${m}`;
  const remote = `${fx.registry().address}/strata-fleet-pg`;
  const base = `${fx.registry().address}/busybox:${m}`;
  const cliHome = await fx.tempDir('strata-fleet-pg-cli-');
  // A CLI whose progress query goes unanswered (its build's worker was killed) may start its store's background worker.
  fx.onEnd(() => strata(['worker', 'stop', '--all'], { env: { STRATA_HOME: cliHome } }));
  await strataOk(['import', '--change', 'CMD ["sh"]', process.env.STRATA_TEST_BUSYBOX_TAR!, 'busybox:latest'], { env: { STRATA_HOME: cliHome } });
  await strataOk(['push', 'busybox:latest', base], { env: { STRATA_HOME: cliHome } });

  const ctx = await fx.tempDir('strata-fleet-pg-ctx-');
  await fs.writeFile(
    path.join(ctx, 'Dockerfile'),
    [
      `FROM ${base} AS build`,
      `RUN echo one ${m} > /one`,
      `RUN echo started ${m} && sleep 8 && echo two > /two`,
      'RUN echo three > /three',
      `FROM ${base}`,
      'COPY --from=build /one /two /three /r/',
      'RUN cat /r/one /r/two /r/three',
      '',
    ].join('\n'),
  );
  const fleet = [];
  for (const i of [1, 2, 3]) fleet.push(await fx.startWorker({ STRATA_HOME: await fx.tempDir(`strata-fleet-pg-w${i}-`), STRATA_TASK_QUEUE: queue, STRATA_REMOTE: remote }));

  const t0 = Date.now();
  const cli = execa('node', [STRATA_BIN, 'build', ctx], {
    reject: false,
    env: { ...process.env, ...EPOCH, STRATA_HOME: cliHome, STRATA_TASK_QUEUE: queue, STRATA_REMOTE: remote },
  });
  fx.onEnd(async () => {
    cli.kill('SIGKILL');
    await cli.catch(() => undefined);
  });
  let stdout = '';
  cli.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  await until('the RUN to start', async () => (stdout.includes(`started ${m}`) ? true : undefined));
  await until('its runc container', () => findContainer(m));
  const workflowId = buildIdOf(stdout)!;
  const identity = await until('the RUN’s worker', () => runningOn(workflowId, 'runStep'));
  const killed = fleet.find((w) => w.identity === identity)!;
  expect(killed).toBeDefined();
  await killed.kill();

  const r = await cli;
  const buildMs = Date.now() - t0;
  if (r.exitCode !== 0) {
    const logs = fleet.map((w) => `worker ${w.identity}:\n${w.log()}`).join('\n');
    throw new Error(`strata build exited ${r.exitCode}\n${stdout}\n${String(r.stderr)}\n${logs}\n${await server!.logTail()}`);
  }
  const imageId = imageIdOf(stdout)!;

  // Where the steps ran, from the history the PostgreSQL-backed server keeps: the first stage
  // began on the killed worker; its killed RUN and everything after ran on other machines,
  // with the layers the killed one made fetched from the registry.
  const runs = (await stepAttempts(workflowId)).filter((a) => a.type === 'runStep');
  expect(runs.map((a) => [a.steps[0], a.identity === killed.identity])).toEqual([
    [2, true],
    [3, true],
    [3, false],
    [4, false],
    [7, false],
  ]);

  // The build is PostgreSQL's: its run in the history store, finished with strata's status in
  // visibility; the test environment's dev server never saw it.
  expect(workflowId).toMatch(/^[\w.:@-]+$/);
  expect(await server!.sql('temporal', `SELECT count(*) FROM current_executions WHERE workflow_id = '${workflowId}'`)).toEqual(['1']);
  const [row] = await server!.sql(
    'temporal_visibility',
    `SELECT workflow_type_name, status, search_attributes::text FROM executions_visibility WHERE workflow_id = '${workflowId}'`,
  );
  expect(row).toMatch(/^buildImage\|2\|.*"succeeded"/);
  const dev = await Connection.connect({ address: `127.0.0.1:${process.env.STRATA_TEMPORAL_PORT}` });
  try {
    await expect(new Client({ connection: dev }).workflow.getHandle(workflowId).describe()).rejects.toThrow(/not found/i);
  } finally {
    await dev.close();
  }

  // One worker on one store (the test environment's, on the dev server), every step run.
  const single = await strataOk(['build', '--no-cache', ctx], {
    env: { ...EPOCH, TEMPORAL_ADDRESS: '', STRATA_REMOTE: '', STRATA_HOME: process.env.STRATA_HOME!, STRATA_TASK_QUEUE: process.env.STRATA_TASK_QUEUE! },
  });
  expect(imageIdOf(single.stdout)).toBe(imageId);
  process.stderr.write(`fleet-postgres: the build with a worker killed took ${buildMs} ms\n`);
}, 180_000);
