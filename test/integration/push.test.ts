// Pushing to a real registry (Debian's docker-registry on a loopback port): strata build
// --push, strata push of an imported image, a schedule with --push; verified with skopeo
// and by docker pull + docker run, the way a user would check.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { strata, strataOk } from '../helpers/cli.js';
import { docker, dockerRmi, dockerRun } from '../helpers/docker.js';
import { startCutProxy } from '../helpers/cutProxy.js';
import { freePort, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startTokenServer, type TokenServer } from '../helpers/tokenServer.js';

import { startTestWorker } from '../helpers/worker.js';

let registry: TestRegistry;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  registry = await startRegistry();
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await registry?.stop();
});

async function scratchDir(prefix: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

async function contextWith(files: Record<string, string>): Promise<string> {
  const dir = await scratchDir('strata-push-ctx-');
  for (const [name, content] of Object.entries(files)) await fs.writeFile(path.join(dir, name), content);
  return dir;
}

interface SkopeoInspect {
  Digest: string;
  Layers: string[];
}

/** The manifest as the registry serves it. */
async function rawManifest(ref: string): Promise<{ mediaType: string; layers: { mediaType: string; digest: string; size: number }[] }> {
  return JSON.parse(await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${ref}`)) as Awaited<ReturnType<typeof rawManifest>>;
}

async function skopeo(...args: string[]): Promise<string> {
  return (await execa('skopeo', args)).stdout;
}

async function inspectRemote(ref: string): Promise<SkopeoInspect> {
  return JSON.parse(await skopeo('inspect', '--tls-verify=false', `docker://${ref}`)) as SkopeoInspect;
}

async function remoteConfig(ref: string): Promise<{ config: { Cmd?: string[]; Env?: string[] }; rootfs: { diff_ids: string[] } }> {
  return JSON.parse(await skopeo('inspect', '--tls-verify=false', '--config', `docker://${ref}`)) as Awaited<ReturnType<typeof remoteConfig>>;
}

/** docker pull, then remove the pulled image at the end. */
async function dockerPull(ref: string): Promise<void> {
  await docker(['pull', '-q', ref]);
  cleanups.push(() => dockerRmi(ref));
}

const uploads = async () => (await registry.requests()).filter((r) => r.method === 'POST' && /\/blobs\/uploads\/$/.test(r.uri));

describe('strata build --push', () => {
  const app = () => `${registry.address}/app:1`;
  let firstDigest = '';

  test('pushes the built image: skopeo sees its layers and config, docker pulls and runs it', async () => {
    const ctx = await contextWith({
      Dockerfile: ['FROM busybox', 'COPY msg.txt /msg.txt', 'RUN echo "built by strata" >> /msg.txt', 'CMD ["cat", "/msg.txt"]', ''].join('\n'),
      'msg.txt': 'hello from the registry\n',
    });
    const r = await strataOk(['build', '--push', '-t', app(), ctx]);
    const digest = /^1: digest: (sha256:[0-9a-f]{64}) size: \d+$/m.exec(r.stdout)?.[1];
    expect(r.stdout).toContain(`The push refers to repository [${registry.address}/app]`);
    expect(digest).toBeDefined();

    const remote = await inspectRemote(app());
    expect(remote.Digest).toBe(digest);
    expect(remote.Layers).toHaveLength(3); // busybox, COPY, RUN
    const config = await remoteConfig(app());
    expect(config.config.Cmd).toEqual(['cat', '/msg.txt']);
    expect(config.rootfs.diff_ids).toHaveLength(3);
    // Each layer went gzip-compressed: its blob digest is not its diff_id.
    expect((await rawManifest(app())).layers.map((l) => l.mediaType)).toEqual(Array(3).fill('application/vnd.oci.image.layer.v1.tar+gzip'));
    expect(remote.Layers.filter((l) => config.rootfs.diff_ids.includes(l))).toEqual([]);
    firstDigest = digest!;

    await dockerPull(app());
    expect(await dockerRun(app())).toBe('hello from the registry\nbuilt by strata');
  });

  test('pushing the same image again uploads no blob and puts the manifest again', async () => {
    const before = await registry.requests();
    const r = await strataOk(['push', app()]);
    const after = await registry.requests();
    const fresh = after.slice(before.length);
    expect(fresh.filter((q) => q.method === 'POST' || q.method === 'PATCH' || (q.method === 'PUT' && q.uri.includes('/blobs/')))).toEqual([]);
    expect(fresh.filter((q) => q.method === 'HEAD' && q.uri.includes('/blobs/'))).toHaveLength(4); // 3 layers + config
    expect(fresh.filter((q) => q.method === 'PUT' && q.uri === '/v2/app/manifests/1').map((q) => q.status)).toEqual([201]);
    expect(r.stdout.match(/: Layer already exists$/gm)).toHaveLength(3);
    // Nothing compressed again, and the same manifest: the same digest.
    expect(r.stdout).toContain(`1: digest: ${firstDigest} size:`);
  });

  test('pushing to a second repository of the registry mounts every blob', async () => {
    const before = (await registry.requests()).length;
    const r = await strataOk(['push', app(), `${registry.address}/second/app:1`]);
    const fresh = (await registry.requests()).slice(before);
    expect(r.stdout.match(/: Mounted from app$/gm)).toHaveLength(3);
    expect(fresh.filter((q) => q.method === 'PATCH' || (q.method === 'PUT' && q.uri.includes('/blobs/')))).toEqual([]);
    const posts = fresh.filter((q) => q.method === 'POST');
    expect(posts).toHaveLength(4); // 3 layers + config
    for (const p of posts) expect(p).toMatchObject({ status: 201, uri: expect.stringMatching(/^\/v2\/second\/app\/blobs\/uploads\/\?mount=sha256%3A[0-9a-f]{64}&from=app$/) });
    expect(r.stdout).toContain(`1: digest: ${firstDigest} size:`);
  });

  test('without -t there is nothing to push to: a usage error before any build', async () => {
    const ctx = await contextWith({ Dockerfile: 'FROM busybox\n' });
    const r = await strata(['build', '--push', ctx]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('--push needs a name to push to: -t REGISTRY/REPO:TAG');
    expect(r.stdout).not.toContain('Build ID');
  });

  test('a registry that is down fails the build with an error naming it', async () => {
    const down = `127.0.0.1:${await freePort()}`;
    const ctx = await contextWith({ Dockerfile: 'FROM busybox\nCMD ["true"]\n' });
    const r = await strata(['build', '--push', '-t', `${down}/app:1`, ctx]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`error: push ${down}/app:1: cannot reach registry ${down}`);
    expect(r.stderr).toContain('ECONNREFUSED');
  });
});

describe('strata push', () => {
  test('pushes an imported image under its own name, and under another name', async () => {
    const ref = `${registry.address}/imported:v1`;
    await strataOk(['import', '--change', 'CMD ["echo", "imported and pushed"]', process.env.STRATA_TEST_BUSYBOX_TAR!, ref]);
    const first = await uploads();
    const r = await strataOk(['push', ref]);
    // The layer is busybox's, which the builds above pushed (compressed) to this registry:
    // it is mounted, and only the config is uploaded.
    expect(r.stdout).toMatch(/^[0-9a-f]{12}: Mounted from [a-z/]+$/m);
    expect((await uploads()).length - first.length).toBe(1);
    await dockerPull(ref);
    expect(await dockerRun(ref)).toBe('imported and pushed');

    const copy = `${registry.address}/copies/busybox:latest`;
    await strataOk(['push', 'busybox:latest', copy]);
    expect((await inspectRemote(copy)).Layers).toEqual((await inspectRemote(ref)).Layers);
    await dockerPull(copy);
    expect(await dockerRun(copy, ['echo', 'copied'])).toBe('copied');

    // A build FROM the pushed copy, on the store that pushed it: the base's manifest names the
    // compressed blob the push made of a layer the store holds uncompressed, and the commit
    // takes that blob as the layer's.
    const ctx = await contextWith({ Dockerfile: `FROM ${copy}\nRUN echo built on the copy > /x\nCMD ["cat", "/x"]\n` });
    const built = await strataOk(['build', '-t', `${registry.address}/on-copy:1`, '--push', ctx]);
    expect(built.stdout).toMatch(/Successfully built [0-9a-f]{12}/);
    await dockerPull(`${registry.address}/on-copy:1`);
    expect(await dockerRun(`${registry.address}/on-copy:1`)).toBe('built on the copy');
  });

  test('bad input and an unreachable registry give clear errors', async () => {
    const down = `127.0.0.1:${await freePort()}`;
    const unreachable = await strata(['push', 'busybox:latest', `${down}/x:1`]);
    expect(unreachable.exitCode).toBe(1);
    expect(unreachable.stderr).toMatch(
      new RegExp(`^error: push ${down}/x:1: cannot reach registry ${down} \\(HEAD http://${down}/v2/x/blobs/sha256:[0-9a-f]{64}\\): connect ECONNREFUSED`, 'm'),
    );

    const missing = await strata(['push', `${registry.address}/nothing:here`]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain(`no such image in the local store`);
    const id = await strata(['push', 'sha256:' + '0'.repeat(12)]);
    expect(id.exitCode).toBe(1);
    expect(id.stderr).toContain('is an image ID; name where it goes');
  });

  describe('a registry with basic auth', () => {
    let secured: TestRegistry;
    beforeAll(async () => {
      // bcrypt (cost 4) of "s3cret", as htpasswd -B writes it.
      secured = await startRegistry({ htpasswd: 'tester:$2b$04$ZxvNhNAdDaDACie1IJv.GOpSgqMMOIfGSTtvGFh8nu5mzEepj145K' });
    });
    afterAll(async () => secured?.stop());

    async function dockerConfigWith(auth: string): Promise<string> {
      const dir = await scratchDir('strata-docker-config-');
      await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify({ auths: { [secured.address]: { auth: Buffer.from(auth).toString('base64') } } }));
      return dir;
    }

    test('uses the credentials of config.json, and names the registry and status when they are wrong', async () => {
      const ref = `${secured.address}/private:1`;
      const good = await dockerConfigWith('tester:s3cret');
      await strataOk(['push', 'busybox:latest', ref], { env: { DOCKER_CONFIG: good } });
      expect((await secured.requests()).filter((q) => q.method === 'PUT' && q.uri === '/v2/private/manifests/1').map((q) => q.status)).toEqual([201]);

      const none = await strata(['push', 'busybox:latest', ref], { env: { DOCKER_CONFIG: await scratchDir('strata-docker-config-') } });
      expect(none.exitCode).toBe(1);
      expect(none.stderr).toContain(`error: push ${ref}: registry ${secured.address} requires a login, and no credentials for it were found`);

      const wrong = await strata(['push', 'busybox:latest', ref], { env: { DOCKER_CONFIG: await dockerConfigWith('tester:wrong') } });
      expect(wrong.exitCode).toBe(1);
      expect(wrong.stderr).toContain(`error: push ${ref}: registry ${secured.address} answered 401 Unauthorized to HEAD /v2/private/blobs/sha256:`);
    });
  });
});

describe('compressed, resumable pushes', () => {
  test('a compressible layer goes smaller than its tar, and skopeo sees the digest strata printed', async () => {
    const text = Array.from({ length: 60_000 }, (_, i) => `line ${i}: the same words, again and again\n`).join('');
    const ctx = await contextWith({ Dockerfile: 'FROM busybox\nCOPY big.txt /big.txt\n', 'big.txt': text });
    const ref = `${registry.address}/compressed:1`;
    const r = await strataOk(['build', '--push', '-t', ref, ctx]);
    const digest = /^1: digest: (sha256:[0-9a-f]{64}) size: \d+$/m.exec(r.stdout)?.[1];
    const remote = await inspectRemote(ref);
    expect(remote.Digest).toBe(digest);
    expect((await rawManifest(ref)).layers[1]!.size).toBeLessThan(text.length / 4);
  });

  test('a connection cut in the middle of a large layer upload does not stop the push', async () => {
    const ctx = await contextWith({ Dockerfile: 'FROM busybox\nCOPY noise.bin /noise.bin\nCMD ["md5sum", "/noise.bin"]\n' });
    const noise = randomBytes(48 << 20);
    await fs.writeFile(path.join(ctx, 'noise.bin'), noise);
    await strataOk(['build', '-t', 'cut-source:1', ctx]);
    const proxy = await startCutProxy(registry.address, 20 << 20);
    cleanups.push(() => proxy.stop());
    const r = await strataOk(['push', 'cut-source:1', `${proxy.address}/cut/app:1`]);
    expect(proxy.cut()).toBe(true);
    const digest = /^1: digest: (sha256:[0-9a-f]{64}) size: \d+$/m.exec(r.stdout)?.[1];
    const ref = `${registry.address}/cut/app:1`;
    expect((await inspectRemote(ref)).Digest).toBe(digest);
    await dockerPull(ref);
    const sum = (await execa('md5sum', { input: noise })).stdout.split(' ')[0];
    expect(await dockerRun(ref)).toBe(`${sum}  /noise.bin`);
  });
});

describe('strata schedule create --push', () => {
  test('each run pushes the tags it built, on a worker started with --allow-push', async () => {
    const worker = await startTestWorker(['--allow-push']);
    cleanups.push(() => worker.stop());
    const env = { STRATA_TASK_QUEUE: worker.queue };
    const ref = `${registry.address}/scheduled:nightly`;
    const ctx = await contextWith({ Dockerfile: 'FROM busybox\nRUN echo scheduled > /built\nCMD ["cat", "/built"]\n' });
    cleanups.push(() => strata(['schedule', 'rm', 'push-nightly'], { env }));
    await strataOk(['schedule', 'create', 'push-nightly', '--every', '1h', '--paused', '-t', ref, '--push', ctx], { env });
    const out = (await strataOk(['schedule', 'trigger', 'push-nightly', '--wait'], { env })).stdout;
    const digest = new RegExp(`pushed ${ref.replace(/[.]/g, '\\.')}@(sha256:[0-9a-f]{64})`).exec(out)?.[1];
    expect(digest).toBeDefined();
    expect((await inspectRemote(ref)).Digest).toBe(digest);
    await dockerPull(ref);
    expect(await dockerRun(ref)).toBe('scheduled');
  });
});

describe('a registry with bearer-token auth', () => {
  let secured: TestRegistry;
  let tokens: TokenServer;

  beforeAll(async () => {
    tokens = await startTokenServer();
    secured = await startRegistry({ token: tokens.auth });
  });
  afterAll(async () => {
    await secured?.stop();
    await tokens?.stop();
  });

  test('logs in to the token server with config.json credentials and pushes with the token', async () => {
    const ref = `${secured.address}/tokened:1`;
    const config = await scratchDir('strata-docker-config-');
    await fs.writeFile(path.join(config, 'config.json'), JSON.stringify({ auths: { [secured.address]: { auth: Buffer.from('tester:s3cret').toString('base64') } } }));
    await strataOk(['push', 'busybox:latest', ref], { env: { DOCKER_CONFIG: config } });
    expect(tokens.requests.flatMap((r) => r.scopes)).toContain('repository:tokened:pull,push');
    // The registry does refuse anonymous clients (skopeo has no login here).
    expect(await inspectRemote(ref).catch((e: Error) => e.message)).toMatch(/unauthorized|authentication required/i);
    expect((await secured.requests()).filter((q) => q.method === 'PUT' && q.uri === '/v2/tokened/manifests/1').map((q) => q.status)).toEqual([201]);

    const refused = await strata(['push', 'busybox:latest', ref], { env: { DOCKER_CONFIG: await scratchDir('strata-docker-config-') } });
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(
      new RegExp(`error: push ${ref}: token server http://127\\.0\\.0\\.1:\\d+/token answered 401 Unauthorized for registry ${secured.address}: a login is required`),
    );
  });
});
