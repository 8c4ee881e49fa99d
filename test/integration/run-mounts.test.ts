// RUN --mount (cache, bind, tmpfs, secret) and RUN's other flags, checked as a user would:
// what the step saw, what the image holds under docker, and where a secret must never be.
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { execa } from 'execa';
import { strata, strataOk } from '../helpers/cli.js';
import { dockerHistory, dockerLoad, dockerRmi, dockerRun, layerListings, uniqueName } from '../helpers/docker.js';

const dirs: string[] = [];
const images: string[] = [];
afterAll(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  if (images.length) await dockerRmi(...images);
});

async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-mounts-'));
  dirs.push(dir);
  return dir;
}

async function context(dockerfile: string[], files: Record<string, string> = {}): Promise<string> {
  const dir = await tempDir();
  await fs.writeFile(path.join(dir, 'Dockerfile'), dockerfile.join('\n') + '\n');
  for (const [name, text] of Object.entries(files)) await fs.writeFile(path.join(dir, name), text);
  return dir;
}

/** Builds, saves and loads into docker; returns the image name and the saved archive. */
async function build(ctx: string, extra: string[] = []): Promise<{ name: string; tar: string; stdout: string }> {
  const name = uniqueName();
  images.push(name);
  const tar = path.join(await tempDir(), 'out.tar');
  const r = await strataOk(['build', '-t', name, '--output', `type=docker,dest=${tar}`, ...extra, ctx]);
  await dockerLoad(tar);
  return { name, tar, stdout: r.stdout };
}

/** Entries the steps after the base added, as paths without a trailing slash. */
async function addedEntries(archive: string): Promise<string[]> {
  return (await layerListings(archive))
    .slice(1)
    .flat()
    .map((e) => e.replace(/\/$/, ''));
}

test('a cache mount keeps its content for the next build and is in no layer', async () => {
  const id = `cache-${randomBytes(4).toString('hex')}`;
  const dockerfile = (n: number) => ['FROM busybox', `RUN --mount=type=cache,id=${id},target=/var/cache/app echo build${n} >> /var/cache/app/log && cp /var/cache/app/log /seen`];
  await build(await context(dockerfile(1)));
  const second = await build(await context(dockerfile(2)));
  expect(await dockerRun(second.name, ['cat', '/seen'])).toBe('build1\nbuild2');
  const added = await addedEntries(second.tar);
  expect(added).toContain('seen');
  expect(added.filter((e) => e.startsWith('var'))).toEqual([]); // neither the content nor runc's mountpoint
});

test('a locked cache mount with mode and owner starts empty and read-only mounts cannot write', async () => {
  const id = `locked-${randomBytes(4).toString('hex')}`;
  const ctx = await context([
    'FROM busybox',
    `RUN --mount=type=cache,id=${id},target=/c,sharing=locked,mode=0700,uid=1,gid=2 stat -c '%a %u:%g' /c > /cache-stat && ls -A /c | wc -l >> /cache-stat`,
    `RUN --mount=type=cache,id=${id},target=/c,ro sh -c 'touch /c/x 2>/dev/null && echo wrote || echo refused' > /ro`,
  ]);
  const { name } = await build(ctx);
  expect(await dockerRun(name, ['cat', '/cache-stat', '/ro'])).toBe('700 1:2\n0\nrefused');
});

test('bind mounts from another stage and from the context; rw changes are discarded', async () => {
  const ctx = await context(
    [
      'FROM busybox AS tools',
      'RUN mkdir /tools && echo built-in-stage > /tools/t',
      'FROM busybox',
      'RUN --mount=type=bind,from=tools,source=/tools,target=/mnt/tools cat /mnt/tools/t > /from-stage',
      'RUN --mount=target=/ctx,rw echo changed > /ctx/data.txt && cat /ctx/data.txt > /rw-seen',
      'RUN --mount=target=/ctx cat /ctx/data.txt > /ctx-seen',
      "RUN --mount=target=/ctx,source=data.txt sh -c 'echo x > /ctx 2>/dev/null && echo wrote || echo refused' > /ro-seen",
    ],
    { 'data.txt': 'original\n' },
  );
  const { name, tar } = await build(ctx);
  expect(await dockerRun(name, ['cat', '/from-stage', '/rw-seen', '/ctx-seen', '/ro-seen'])).toBe('built-in-stage\nchanged\noriginal\nrefused');
  expect(await fs.readFile(path.join(ctx, 'data.txt'), 'utf8')).toBe('original\n');
  const added = await addedEntries(tar);
  expect(added.filter((e) => /^(mnt|ctx|tools)(\/|$)/.test(e))).toEqual([]);
});

test('a tmpfs mount is writable during the step and absent from the layer', async () => {
  const ctx = await context([
    'FROM busybox',
    'RUN --mount=type=tmpfs,target=/scratch,size=1m echo x > /scratch/f && ls /scratch > /listed && df /scratch | grep -c tmpfs >> /listed',
  ]);
  const { name, tar } = await build(ctx);
  expect(await dockerRun(name, ['cat', '/listed'])).toBe('f\n1');
  expect((await addedEntries(tar)).filter((e) => e.startsWith('scratch'))).toEqual([]);
});

test('a secret is readable by RUN and nowhere else: layers, docker history, Temporal history, the store', async () => {
  const secret = `s3cr3t-${randomBytes(12).toString('hex')}`;
  const secretDir = await tempDir();
  const secretFile = path.join(secretDir, 'token');
  await fs.writeFile(secretFile, secret);
  const ctx = await context([
    'FROM busybox',
    "RUN --mount=type=secret,id=token sha256sum /run/secrets/token | cut -c1-64 > /secret-len && stat -c '%a %u' /run/secrets/token >> /secret-len",
    'RUN --mount=type=secret,id=token,env=TOKEN,target=/custom/place echo ${#TOKEN} > /env-len && cat /custom/place | wc -c >> /env-len',
    'RUN --mount=type=secret,id=absent echo optional-missing-is-fine > /optional',
  ]);
  const r = await build(ctx, ['--secret', `id=token,src=${secretFile}`]);
  expect(await dockerRun(r.name, ['cat', '/secret-len', '/env-len', '/optional'])).toBe(
    `${createHash('sha256').update(secret).digest('hex')}\n400 0\n${secret.length}\n${secret.length}\noptional-missing-is-fine`,
  );

  // Layers are stored uncompressed in the saved archive: searching it searches every layer.
  expect((await fs.readFile(r.tar)).includes(secret)).toBe(false);
  const added = await addedEntries(r.tar);
  expect(added.filter((e) => /^(run|custom)(\/|$)/.test(e))).toEqual([]);
  expect(JSON.stringify(await dockerHistory(r.name))).not.toContain(secret);

  const buildId = /Build ID: (\S+)/.exec(r.stdout)![1]!;
  const connection = await Connection.connect({ address: `127.0.0.1:${process.env.STRATA_TEMPORAL_PORT}` });
  try {
    const history = await new Client({ connection }).workflow.getHandle(buildId).fetchHistory();
    expect(history.events?.length).toBeGreaterThan(0);
    expect(textOf(history)).toContain('RUN --mount=type=secret,id=token'); // the walk does read payloads
    expect(textOf(history)).not.toContain(secret);
  } finally {
    await connection.close();
  }

  const inStore = await execa('grep', ['-r', '-l', '-F', '--', secret, process.env.STRATA_HOME!], { reject: false });
  expect(inStore.stdout).toBe('');
  expect(inStore.exitCode).toBe(1); // grep: searched everything, found nothing
});

test('a missing required secret fails the build with an error naming the step', async () => {
  const ctx = await context(['FROM busybox', 'RUN --mount=type=secret,id=deploy-key,required=true cat /run/secrets/deploy-key']);
  const r = await strata(['build', ctx]);
  expect(r.exitCode).not.toBe(0);
  expect(r.stderr).toContain('Step 2/2 : RUN --mount=type=secret,id=deploy-key,required=true cat /run/secrets/deploy-key (line 2)');
  expect(r.stderr).toContain('secret deploy-key is required but was not given');
});

test('RUN --security=sandbox is the default; insecure and unknown flags are errors naming the line', async () => {
  const { name } = await build(await context(['FROM busybox', 'RUN --security=sandbox echo ok > /ok']));
  expect(await dockerRun(name, ['cat', '/ok'])).toBe('ok');
  const insecure = await strata(['build', await context(['FROM busybox', 'RUN --security=insecure true'])]);
  expect(insecure.exitCode).not.toBe(0);
  expect(insecure.stderr).toContain('Dockerfile:2: RUN: --security=insecure is not supported');
  const unknown = await strata(['build', await context(['FROM busybox', 'RUN --device=/dev/fuse true'])]);
  expect(unknown.exitCode).not.toBe(0);
  expect(unknown.stderr).toContain('Dockerfile:2: RUN: flag --device is not supported');
  const badMount = await strata(['build', await context(['FROM busybox', 'RUN --mount=type=cache,target=/c,sharing=sometimes true'])]);
  expect(badMount.exitCode).toBe(1);
  expect(badMount.stderr).toContain('sharing must be shared, private or locked');
});

/** All text in a workflow history, payload bytes decoded, so a search sees what Temporal stored. */
function textOf(value: unknown): string {
  const parts: string[] = [];
  const walk = (v: unknown) => {
    if (v instanceof Uint8Array) parts.push(Buffer.from(v).toString('utf8'));
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    else if (typeof v === 'string') parts.push(v);
  };
  walk(value);
  return parts.join('\n');
}
