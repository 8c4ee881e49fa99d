// `strata build --cache-to` / `--cache-from type=registry`: a build on one machine exports its
// cache to Debian's docker-registry; a machine that starts empty (its own store, worker and task
// queue, no STRATA_REMOTE) builds the same Dockerfile with --cache-from and runs no step, giving
// the same image, which runs under docker. The entries it read served that build only: a build
// there without --cache-from runs its steps again.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { strata, strataOk } from '../helpers/cli.js';
import { dockerLoad, dockerRmi, dockerRun } from '../helpers/docker.js';
import { fleetFixture, STEP_ACTIVITIES } from '../helpers/fleet.js';
import { activityAttempts } from '../helpers/temporal.js';

const fx = fleetFixture();
const { tempDir } = fx;

/** A machine: its own store, worker and task queue, no remote store. */
async function machine(name: string): Promise<NodeJS.ProcessEnv> {
  const env = { STRATA_HOME: await tempDir(`strata-cachereg-${name}-`), STRATA_TASK_QUEUE: `cachereg-${name}-${randomBytes(4).toString('hex')}`, STRATA_REMOTE: '' };
  await fx.startWorker(env);
  return { ...env, SOURCE_DATE_EPOCH: '1700000000' };
}

const buildIdOf = (stdout: string) => /Build ID: (\S+)/.exec(stdout)![1]!;
const imageIdOf = (stdout: string) => /Successfully built ([0-9a-f]{12})/.exec(stdout)![1]!;
const stepsRun = async (stdout: string) => (await activityAttempts(buildIdOf(stdout))).filter((a) => STEP_ACTIVITIES.has(a.type)).length;

describe('--cache-to / --cache-from type=registry', () => {
  test('a machine that starts empty builds from the exported cache without running a step; the entries serve that build only', async () => {
    const m = randomBytes(4).toString('hex');
    const cache = `${fx.registry().address}/cache-${m}`;
    const base = `${fx.registry().address}/busybox:${m}`;
    // The base comes from the registry on both machines (pushed from a third store).
    const pusher = { STRATA_HOME: await tempDir('strata-cachereg-base-') };
    await strataOk(['import', '--change', 'CMD ["sh"]', process.env.STRATA_TEST_BUSYBOX_TAR!, 'busybox:latest'], { env: pusher });
    await strataOk(['push', 'busybox:latest', base], { env: pusher });
    const one = await machine('one');

    const ctx = await tempDir('strata-cachereg-ctx-');
    await fs.writeFile(path.join(ctx, 'hello.txt'), `hello-${m}\n`);
    await fs.writeFile(
      path.join(ctx, 'Dockerfile'),
      [`FROM ${base}`, 'COPY hello.txt /hello.txt', 'RUN cat /hello.txt > /out.txt', `ENV GREETING=hi-${m}`, 'RUN echo $GREETING >> /out.txt', 'CMD ["cat", "/out.txt"]', ''].join(
        '\n',
      ),
    );

    const first = await strataOk(['build', '--cache-to', `type=registry,ref=${cache},mode=max`, ctx], { env: one });
    expect(await stepsRun(first.stdout)).toBe(3);
    expect(first.stderr).toContain(`Exported 3 cache entries to ${cache}`);

    const two = await machine('two');
    const second = await strataOk(['build', '-t', `cachereg-${m}:1`, '--cache-from', `type=registry,ref=${cache}`, ctx], { env: two });
    // COPY, RUN, ENV, RUN and CMD.
    expect(second.stdout.match(/^ ---> Using cache$/gm)).toHaveLength(5);
    expect(await stepsRun(second.stdout)).toBe(0);
    expect(imageIdOf(second.stdout)).toBe(imageIdOf(first.stdout));

    const tar = path.join(ctx, 'out.tar');
    await strataOk(['save', '-o', tar, `cachereg-${m}:1`], { env: two });
    fx.onEnd(() => dockerRmi(`cachereg-${m}:1`));
    expect(await dockerLoad(tar)).toContain(`cachereg-${m}:1`);
    expect(await dockerRun(`cachereg-${m}:1`)).toBe(`hello-${m}\nhi-${m}`);

    // Nothing of the user's repository went into the machine's shared cache index.
    const third = await strataOk(['build', ctx], { env: two });
    expect(third.stdout).not.toMatch(/^ ---> Using cache$/m);
    expect(await stepsRun(third.stdout)).toBe(3);
    expect(imageIdOf(third.stdout)).toBe(imageIdOf(first.stdout));
  }, 600_000);

  test('a cache type strata does not know is a usage error naming the flag', async () => {
    const ctx = await tempDir('strata-cachereg-bad-');
    await fs.writeFile(path.join(ctx, 'Dockerfile'), 'FROM busybox\n');
    const bad = await strata(['build', '--cache-to', 'type=local,dest=/tmp/x', ctx]);
    expect(bad.exitCode).toBe(125);
    expect(bad.stderr).toMatch(/--cache-to.*unsupported type "local"/);
    const from = await strata(['build', '--cache-from', `type=registry,ref=${fx.registry().address}/c:tag`, ctx]);
    expect(from.exitCode).toBe(125);
    expect(from.stderr).toContain('--cache-from');
  });
});
