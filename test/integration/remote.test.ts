// The remote store (STRATA_REMOTE): three workers and a CLI on four different STRATA_HOMEs
// (four machines) cooperate through Debian's docker-registry. A multistage build whose steps
// run on several workers gives the image a single worker on a shared store gives; the CLI's
// store gets the image (images, save → docker load → run); a worker that never saw the build
// rebuilds it all from the remote cache; secrets are refused.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { strata, strataOk } from '../helpers/cli.js';
import { fleetFixture, STEP_ACTIVITIES } from '../helpers/fleet.js';
import { dockerLoad, dockerRmi, dockerRun } from '../helpers/docker.js';
import { activityAttempts } from '../helpers/temporal.js';

const EPOCH = { SOURCE_DATE_EPOCH: '1700000000' };

const fx = fleetFixture();
const { tempDir } = fx;

/** The worker identity of each started activity of a build, with its type and how long it ran (ms). */
async function activityWorkers(workflowId: string): Promise<{ type: string; identity: string; ms: number }[]> {
  const connection = await Connection.connect({ address: `127.0.0.1:${process.env.STRATA_TEMPORAL_PORT}` });
  try {
    const history = await new Client({ connection }).workflow.getHandle(workflowId).fetchHistory();
    const types = new Map<string, string>();
    const starts = new Map<string, { type: string; identity: string; ms: number; at: number }>();
    const time = (e: { eventTime?: { seconds?: unknown; nanos?: number | null } | null }) => Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;
    for (const e of history.events ?? []) {
      const scheduled = e.activityTaskScheduledEventAttributes;
      if (scheduled) types.set(String(e.eventId), scheduled.activityType?.name ?? '');
      const started = e.activityTaskStartedEventAttributes;
      if (started) starts.set(String(e.eventId), { type: types.get(String(started.scheduledEventId)) ?? '', identity: started.identity ?? '', ms: 0, at: time(e) });
      const done = e.activityTaskCompletedEventAttributes;
      const a = done ? starts.get(String(done.startedEventId)) : undefined;
      if (a) a.ms = Math.round(time(e) - a.at);
    }
    return [...starts.values()].map(({ at: _at, ...a }) => a);
  } finally {
    await connection.close();
  }
}

const buildIdOf = (stdout: string) => /Build ID: (\S+)/.exec(stdout)![1]!;
const imageIdOf = (stdout: string) => /Successfully built ([0-9a-f]{12})/.exec(stdout)![1]!;

describe('remote store (STRATA_REMOTE)', () => {
  test('workers on three stores build one multistage image through the registry; a fresh worker rebuilds it from the remote cache; secrets are refused', async () => {
    const m = randomBytes(4).toString('hex');
    const queue = `remote-${m}`;
    const remote = `${fx.registry().address}/strata-remote`;
    const base = `${fx.registry().address}/busybox:${m}`;

    // The CLI's machine: busybox imported into its own store and pushed to the registry.
    const cliHome = await tempDir('strata-remote-cli-');
    const cli = { STRATA_HOME: cliHome, STRATA_TASK_QUEUE: queue, STRATA_REMOTE: remote, ...EPOCH };
    await strataOk(['import', '--change', 'CMD ["sh"]', process.env.STRATA_TEST_BUSYBOX_TAR!, 'busybox:latest'], { env: { STRATA_HOME: cliHome } });
    await strataOk(['push', 'busybox:latest', base], { env: { STRATA_HOME: cliHome } });

    const ctx = await tempDir('strata-remote-ctx-');
    await fs.writeFile(path.join(ctx, 'two.txt'), `two-${m}\n`);
    await fs.writeFile(
      path.join(ctx, 'Dockerfile'),
      [
        `FROM ${base} AS one`,
        `RUN echo one-${m} > /one.txt`,
        `FROM ${base} AS two`,
        'COPY two.txt /two.txt',
        'RUN cat /two.txt > /two-out.txt',
        `FROM ${base}`,
        'COPY --from=one /one.txt /r/one.txt',
        'COPY --from=two /two-out.txt /r/two.txt',
        'WORKDIR /r',
        'RUN cat one.txt two.txt > all.txt',
        'CMD ["cat", "/r/all.txt"]',
        '',
      ].join('\n'),
    );

    const homes = await Promise.all([1, 2, 3].map((i) => tempDir(`strata-remote-w${i}-`)));
    const three = await Promise.all(homes.map((home) => fx.startWorker({ STRATA_HOME: home, STRATA_TASK_QUEUE: queue, STRATA_REMOTE: remote })));

    const t0 = Date.now();
    const first = await strataOk(['build', '-t', `remote-${m}:1`, ctx], { env: cli });
    const coldMs = Date.now() - t0;
    const image = imageIdOf(first.stdout);

    // The steps ran on these machines. A stage's steps stay on the worker that took its first
    // (sticky routing), and which worker takes a stage is Temporal's choice: one may take all
    // three. test/integration/fleet.test.ts moves a build from one machine to another for sure.
    const ran = (await activityWorkers(buildIdOf(first.stdout))).filter((a) => STEP_ACTIVITIES.has(a.type));
    expect(ran.length).toBe(7);
    const identities = new Set(three.map((w) => w.identity));
    expect(ran.every((a) => identities.has(a.identity))).toBe(true);

    // The image a single worker on a shared store makes (the test environment's own worker and store).
    const t1 = Date.now();
    const shared = await strataOk(['build', ctx], { env: EPOCH });
    const sharedMs = Date.now() - t1;
    const msOf = (list: { type: string; ms: number }[]) => list.map((a) => `${a.type} ${a.ms}`).join(', ');
    console.log(
      `activities on 3 workers: ${msOf(ran)}\nactivities on one shared store: ${msOf((await activityWorkers(buildIdOf(shared.stdout))).filter((a) => STEP_ACTIVITIES.has(a.type)))}`,
    );
    expect(imageIdOf(shared.stdout)).toBe(image);

    // The CLI's machine has the image, tagged: images, save → docker load → run.
    expect((await strataOk(['images'], { env: cli })).stdout).toMatch(new RegExp(`remote-${m}\\s+1\\s+${image}`));
    const tar = path.join(ctx, 'out.tar');
    await strataOk(['save', '-o', tar, `remote-${m}:1`], { env: cli });
    fx.onEnd(() => dockerRmi(`remote-${m}:1`));
    expect(await dockerLoad(tar)).toContain(`remote-${m}:1`);
    expect(await dockerRun(`remote-${m}:1`)).toBe(`one-${m}\ntwo-${m}`);

    // A worker that never saw the build, and a CLI store that never did: every step from the remote cache.
    for (const w of three) await w.stop();
    const fresh = await fx.startWorker({ STRATA_HOME: await tempDir('strata-remote-w4-'), STRATA_TASK_QUEUE: queue, STRATA_REMOTE: remote });
    const cli2 = { ...cli, STRATA_HOME: await tempDir('strata-remote-cli2-') };
    const t2 = Date.now();
    const second = await strataOk(['build', '-t', `remote-${m}:1`, ctx], { env: cli2 });
    const cachedMs = Date.now() - t2;
    expect(imageIdOf(second.stdout)).toBe(image);
    // Every step after the FROMs: 7 filesystem steps and CMD.
    expect(second.stdout.match(/^ ---> Using cache$/gm)).toHaveLength(8);
    const types = (await activityAttempts(buildIdOf(second.stdout))).map((a) => a.type);
    expect(types.filter((t) => STEP_ACTIVITIES.has(t))).toEqual([]);
    expect((await strataOk(['images'], { env: cli2 })).stdout).toMatch(new RegExp(`remote-${m}\\s+1\\s+${image}`));

    // Secrets never go through the registry.
    const secret = await strata(['build', '--secret', 'id=token,env=HOME', ctx], { env: cli });
    expect(secret.exitCode).not.toBe(0);
    expect(secret.stderr).toContain('--secret cannot be used with STRATA_REMOTE');
    await fresh.stop();

    console.log(`remote store: cold build on 3 workers ${coldMs} ms, same build on one shared-store worker ${sharedMs} ms, fully cached rebuild on a fresh worker ${cachedMs} ms`);
  }, 600_000);

  test('without SOURCE_DATE_EPOCH, a cached rebuild on another machine keeps the image ID (the created times go through the registry too)', async () => {
    const m = randomBytes(4).toString('hex');
    const queue = `remote-${m}`;
    const remote = `${fx.registry().address}/strata-remote`;
    const base = `${fx.registry().address}/busybox:${m}`;
    const cliHome = await tempDir('strata-remote-cli-');
    await strataOk(['import', process.env.STRATA_TEST_BUSYBOX_TAR!, 'busybox:latest'], { env: { STRATA_HOME: cliHome } });
    await strataOk(['push', 'busybox:latest', base], { env: { STRATA_HOME: cliHome } });
    const ctx = await tempDir('strata-remote-ctx-');
    await fs.writeFile(path.join(ctx, 'Dockerfile'), `FROM ${base}\nRUN echo ${m} > /m\nENV M=${m}\n`);
    const cli = { STRATA_HOME: cliHome, STRATA_TASK_QUEUE: queue, STRATA_REMOTE: remote, SOURCE_DATE_EPOCH: '' };

    const one = await fx.startWorker({ STRATA_HOME: await tempDir('strata-remote-w5-'), STRATA_TASK_QUEUE: queue, STRATA_REMOTE: remote });
    const first = await strataOk(['build', ctx], { env: cli });
    await one.stop();
    const two = await fx.startWorker({ STRATA_HOME: await tempDir('strata-remote-w6-'), STRATA_TASK_QUEUE: queue, STRATA_REMOTE: remote });
    const second = await strataOk(['build', ctx], { env: cli });
    await two.stop();
    expect(second.stdout.match(/^ ---> Using cache$/gm)).toHaveLength(2);
    expect(imageIdOf(second.stdout)).toBe(imageIdOf(first.stdout));
  }, 300_000);
});
