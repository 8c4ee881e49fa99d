// Pushing to a real registry (Debian's docker-registry on a loopback port): strata build
// --push, strata push of an imported image, a schedule with --push; verified with skopeo
// and by docker pull + docker run, the way a user would check.
import { createPrivateKey, sign, X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { strata, strataOk } from '../helpers/cli.js';
import { docker, dockerRmi, dockerRun } from '../helpers/docker.js';
import { freePort, startRegistry, type TestRegistry } from '../helpers/registry.js';
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
    // Each pushed layer is its uncompressed tar: the blob digest is the diff_id.
    expect(remote.Layers).toEqual(config.rootfs.diff_ids);

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
    expect(r.stdout).toMatch(/^[0-9a-f]{12}: Pushed$/m);
    expect((await uploads()).length - first.length).toBe(2); // the layer and the config
    await dockerPull(ref);
    expect(await dockerRun(ref)).toBe('imported and pushed');

    const copy = `${registry.address}/copies/busybox:latest`;
    await strataOk(['push', 'busybox:latest', copy]);
    expect((await inspectRemote(copy)).Layers).toEqual((await inspectRemote(ref)).Layers);
    await dockerPull(copy);
    expect(await dockerRun(copy, ['echo', 'copied'])).toBe('copied');
  });

  test('bad input and an unreachable registry give clear errors', async () => {
    const down = `127.0.0.1:${await freePort()}`;
    const unreachable = await strata(['push', 'busybox:latest', `${down}/x:1`]);
    expect(unreachable.exitCode).toBe(1);
    expect(unreachable.stderr).toMatch(new RegExp(`^error: push ${down}/x:1: cannot reach registry ${down} \\(HEAD http://${down}/v2/x/blobs/sha256:[0-9a-f]{64}\\): connect ECONNREFUSED`, 'm'));

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
  let tokenServer: http.Server;
  const scopes: string[] = [];

  beforeAll(async () => {
    const dir = await scratchDir('strata-token-');
    const keyFile = path.join(dir, 'key.pem');
    const certFile = path.join(dir, 'cert.pem');
    await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=strata-test-token']);
    const key = createPrivateKey(await fs.readFile(keyFile));
    const certDer = new X509Certificate(await fs.readFile(certFile)).raw.toString('base64');
    const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');
    // A token server as the distribution token spec describes: it grants what the scope asks
    // to a client that logs in as tester:s3cret.
    tokenServer = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      scopes.push(...url.searchParams.getAll('scope'));
      if (req.headers.authorization !== `Basic ${Buffer.from('tester:s3cret').toString('base64')}`) {
        res.writeHead(401).end();
        return;
      }
      const access = url.searchParams.getAll('scope').map((s) => {
        const [type, name, actions] = s.split(':');
        return { type, name, actions: actions!.split(',') };
      });
      const now = Math.floor(Date.now() / 1000);
      const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', x5c: [certDer] }));
      const claims = b64url(JSON.stringify({ iss: 'strata-test-issuer', sub: 'tester', aud: url.searchParams.get('service'), exp: now + 600, nbf: now - 60, iat: now, jti: String(now), access }));
      const signature = b64url(sign('sha256', Buffer.from(`${header}.${claims}`), key));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `${header}.${claims}.${signature}` }));
    });
    await new Promise<void>((r) => tokenServer.listen(0, '127.0.0.1', r));
    const realm = `http://127.0.0.1:${(tokenServer.address() as { port: number }).port}/token`;
    secured = await startRegistry({ token: { realm, service: 'strata-test-registry', issuer: 'strata-test-issuer', certFile } });
  });
  afterAll(async () => {
    await secured?.stop();
    await new Promise((r) => tokenServer?.close(r));
  });

  test('logs in to the token server with config.json credentials and pushes with the token', async () => {
    const ref = `${secured.address}/tokened:1`;
    const config = await scratchDir('strata-docker-config-');
    await fs.writeFile(path.join(config, 'config.json'), JSON.stringify({ auths: { [secured.address]: { auth: Buffer.from('tester:s3cret').toString('base64') } } }));
    await strataOk(['push', 'busybox:latest', ref], { env: { DOCKER_CONFIG: config } });
    expect(scopes).toContain('repository:tokened:pull,push');
    // The registry does refuse anonymous clients (skopeo has no login here).
    expect(await inspectRemote(ref).catch((e: Error) => e.message)).toMatch(/unauthorized|authentication required/i);
    expect((await secured.requests()).filter((q) => q.method === 'PUT' && q.uri === '/v2/tokened/manifests/1').map((q) => q.status)).toEqual([201]);

    const refused = await strata(['push', 'busybox:latest', ref], { env: { DOCKER_CONFIG: await scratchDir('strata-docker-config-') } });
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`error: push ${ref}: token server http://127\\.0\\.0\\.1:\\d+/token answered 401 Unauthorized for registry ${secured.address}: a login is required`));
  });
});
