// RUN through runc on overlayfs, checked as a user would: the image under docker, the
// layer tars' whiteouts, the config, errors, and reproducible image IDs.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { STRATA_BIN, strata, strataOk } from '../helpers/cli.js';
import { dockerInspect, dockerLoad, dockerRmi, dockerRun, layerListings, uniqueName } from '../helpers/docker.js';

const dirs: string[] = [];
const images: string[] = [];
afterAll(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  if (images.length) await dockerRmi(...images);
});

async function context(dockerfile: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-run-'));
  dirs.push(dir);
  await fs.writeFile(path.join(dir, 'Dockerfile'), dockerfile);
  return dir;
}

test('RUN steps that create, change, chmod and delete give docker the filesystem they describe, with whiteouts', async () => {
  const name = uniqueName();
  images.push(name);
  const ctx = await context(
    [
      'FROM busybox',
      'RUN mkdir -p /data/sub && echo one > /data/a && echo two > /data/b && echo x > /data/sub/old && ln -s a /data/link',
      'RUN rm /data/a && chmod 600 /data/b && echo more >> /data/b',
      'RUN rm -rf /data/sub && mkdir /data/sub && echo new > /data/sub/fresh',
      'CMD ["sh", "-c", "cd /data && find . | sort && stat -c \'%A %n\' b && readlink link && cat b sub/fresh"]',
      '',
    ].join('\n'),
  );
  const tar = path.join(ctx, 'out.tar');
  await strataOk(['build', '-t', name, '--output', `type=docker,dest=${tar}`, ctx]);
  await dockerLoad(tar);
  expect(await dockerRun(name)).toBe(['.', './b', './link', './sub', './sub/fresh', '-rw------- b', 'a', 'two', 'more', 'new'].join('\n'));

  const layers = await layerListings(tar);
  expect(layers).toHaveLength(4); // busybox + three RUNs
  expect(layers[2]).toContain('data/.wh.a'); // deleted file
  expect(layers[3]).toEqual(expect.arrayContaining(['data/sub/', 'data/sub/.wh..wh..opq', 'data/sub/fresh'])); // removed and recreated
  // runc's mountpoints are not the step's changes
  for (const l of layers.slice(1)) expect(l.filter((e) => /^(etc\/hosts|etc\/resolv\.conf|proc\/|sys\/|dev\/)/.test(e))).toEqual([]);
});

test('USER changes what id -u prints in a later RUN; ENV and ARG reach RUN; ARG stays out of the config', async () => {
  const name = uniqueName();
  images.push(name);
  const ctx = await context(
    [
      'FROM busybox',
      'ARG FLAVOUR=vanilla',
      'ENV COLOUR=blue',
      "RUN echo 'app:x:1234:1234:app:/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1234:' >> /etc/group && mkdir -p /home/app && chown 1234:1234 /home/app",
      'RUN echo "flavour=$FLAVOUR colour=$COLOUR" > /seen',
      'USER app',
      'RUN id -u > /home/app/uid && id -g >> /home/app/uid && echo "home=$HOME" >> /home/app/uid',
      'CMD ["sh", "-c", "cat /seen /home/app/uid"]',
      '',
    ].join('\n'),
  );
  const tar = path.join(ctx, 'out.tar');
  await strataOk(['build', '-t', name, '--build-arg', 'FLAVOUR=mint', '--output', `type=docker,dest=${tar}`, ctx]);
  await dockerLoad(tar);
  expect(await dockerRun(name)).toBe('flavour=mint colour=blue\n1234\n1234\nhome=/home/app');
  const env = (await dockerInspect(name)).Config.Env ?? [];
  expect(env).toContain('COLOUR=blue');
  expect(env.some((e) => e.startsWith('FLAVOUR='))).toBe(false);
});

test('a RUN exiting 3 fails the build naming the step, the line and the exit code', async () => {
  const ctx = await context('FROM busybox\nRUN echo before\nRUN echo about to fail; exit 3\nRUN echo never\n');
  const r = await strata(['build', ctx]);
  expect(r.exitCode).toBe(1);
  expect(r.stdout).toContain('about to fail');
  expect(r.stderr).toContain('Step 3/4 : RUN echo about to fail; exit 3 (line 3)');
  expect(r.stderr).toContain('exit code: 3');
  expect(r.stdout).not.toContain('Step 4/4');
});

test('with SOURCE_DATE_EPOCH the same Dockerfile gives the same image ID twice', async () => {
  const ctx = await context('FROM busybox\nRUN echo hello > /greeting && mkdir /d && touch /d/f\nENV X=1\n');
  await fs.writeFile(path.join(ctx, 'f'), 'file\n');
  await fs.appendFile(path.join(ctx, 'Dockerfile'), 'COPY f /f\n');
  const env = { SOURCE_DATE_EPOCH: '1700000000' };
  const ids: string[] = [];
  for (let i = 0; i < 2; i++) {
    const r = await strataOk(['build', ctx], { env });
    ids.push(/Successfully built ([0-9a-f]{12})/.exec(r.stdout)![1]!);
  }
  expect(ids[0]).toBe(ids[1]);
});

test('a chain of 200 RUN steps builds: every step mounts all the layers beneath it', async () => {
  const lines = ['FROM busybox'];
  for (let i = 1; i <= 200; i++) lines.push(`RUN echo ${i} >> /chain`);
  // Runs on a 201-layer overlay; exits non-zero (failing the build) unless every layer is seen.
  lines.push('RUN test "$(wc -l < /chain)" = 200 && test "$(head -1 /chain)" = 1 && test "$(tail -1 /chain)" = 200');
  const ctx = await context(lines.join('\n') + '\n');
  const tar = path.join(ctx, 'out.tar');
  const r = await strataOk(['build', '--output', `type=docker,dest=${tar}`, ctx]);
  expect(r.stdout).toContain('Step 202/202');
  const manifest = JSON.parse((await execa('tar', ['-xOf', tar, 'manifest.json'])).stdout) as { Layers: string[] }[];
  expect(manifest[0]!.Layers).toHaveLength(201);
  // The top layer holds the whole file, not only the last line.
  const top = await execa('sh', ['-c', 'tar -xOf "$1" "$2" | tar -xO chain', 'sh', tar, manifest[0]!.Layers[200]!]);
  expect(top.stdout.split('\n')).toEqual(Array.from({ length: 200 }, (_, i) => String(i + 1)));
});

test('output streams to strata build while the step runs, and strata logs keeps it whole', async () => {
  const ctx = await context('FROM busybox\nRUN echo first-line && sleep 6 && seq 1 3000 && echo last-line\n');
  const cli = execa('node', [STRATA_BIN, 'build', ctx], { reject: false });
  let stdout = '';
  let secondSeenWithFirst: boolean | undefined;
  cli.stdout!.on('data', (c: Buffer) => {
    stdout += c.toString();
    // Whole lines only: the step's own header line quotes both words.
    if (secondSeenWithFirst === undefined && /^first-line$/m.test(stdout)) secondSeenWithFirst = /^last-line$/m.test(stdout);
  });
  const r = await cli;
  expect(r.exitCode).toBe(0);
  // The first line arrived while the step was still sleeping, not with the rest at the end.
  expect(secondSeenWithFirst).toBe(false);
  expect(stdout).toMatch(/^last-line$/m);

  const id = /Build ID: (\S+)/.exec(stdout)![1]!;
  const log = await strataOk(['logs', id, '--step', '2']);
  expect(log.stdout.split('\n').filter(Boolean)).toEqual(['first-line', ...Array.from({ length: 3000 }, (_, i) => String(i + 1)), 'last-line']);
});

test('RUN --network=none sees only loopback; the default has its own interface besides it', async () => {
  const ctx = await context(
    [
      'FROM busybox',
      // /proc/net/dev: two header lines, then one line per interface.
      'RUN --network=none test "$(tail -n +3 /proc/net/dev | wc -l)" = 1 && grep -q "lo:" /proc/net/dev',
      'RUN test "$(tail -n +3 /proc/net/dev | wc -l)" -gt 1',
      '',
    ].join('\n'),
  );
  await strataOk(['build', ctx]);
  const none = await strata(['build', '--network', 'none', ctx]);
  expect(none.exitCode).toBe(1);
  expect(none.stderr).toContain('Step 3/3');
});

test('--step-timeout kills a step that runs too long and names it', async () => {
  const ctx = await context('FROM busybox\nRUN echo going to sleep && sleep 60\n');
  const r = await strata(['build', '--step-timeout', '2s', ctx]);
  expect(r.exitCode).toBe(1);
  expect(r.stderr).toContain('Step 2/2 : RUN echo going to sleep && sleep 60 (line 2)');
  expect(r.stderr).toContain('step timeout of 2s');
  expect(r.stderr).toContain('going to sleep');
});
