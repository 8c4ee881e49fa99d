// Pulling from a real registry (Debian's docker-registry on a loopback port), with images
// that skopeo put there (gzip layers), as a user would: strata pull, FROM and COPY --from of
// images the store lacks, manifest lists, token and credential-helper auth, mirrors; the
// result run by docker, and the registry's access log read to count what travelled.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { REPO_ROOT, strata, strataOk } from '../helpers/cli.js';
import { classicBuild } from '../helpers/differential.js';
import { docker, dockerLoad, dockerRmi, dockerRun, uniqueName } from '../helpers/docker.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startTokenServer, TOKEN_PASSWORD, TOKEN_USER, type TokenServer } from '../helpers/tokenServer.js';

let registry: TestRegistry;
const cleanups: (() => Promise<unknown>)[] = [];
/** Text the source image prints: unique per run, so no store can have its layers. */
const marker = randomBytes(6).toString('hex');
let src: string;
let srcArchive: string;

async function scratchDir(prefix: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

async function skopeo(...args: string[]): Promise<string> {
  return (await execa('skopeo', args)).stdout;
}

/** skopeo copy of a docker archive into the registry, gzip layers. */
async function skopeoPush(archive: string, ref: string): Promise<void> {
  await skopeo('copy', '--quiet', '--dest-compress', '--dest-tls-verify=false', `docker-archive:${archive}`, `docker://${ref}`);
}

const blobGets = (reqs: { method: string; uri: string }[]) => reqs.filter((r) => r.method === 'GET' && /\/blobs\/sha256:/.test(r.uri));

/** strata save from `home`, docker load, docker run: what the image prints. */
async function runUnderDocker(home: string, ref: string): Promise<string> {
  const out = path.join(home, 'out.tar');
  await strataOk(['save', '-o', out, ref], { env: { STRATA_HOME: home } });
  const [loaded] = await dockerLoad(out);
  cleanups.push(() => dockerRmi(loaded!));
  return dockerRun(loaded!);
}

beforeAll(async () => {
  registry = await startRegistry();
  // A docker-built image of three layers (the base, a COPY, a RUN), copied by skopeo. Its
  // base is this file's own: other test runs on the same dockerd remove the shared one.
  const base = `${uniqueName('strata-pull-base')}:1`;
  await docker(['import', '--change', 'CMD ["sh"]', process.env.STRATA_TEST_BUSYBOX_TAR!, base]);
  cleanups.push(() => dockerRmi(base));
  const ctx = await scratchDir('strata-pull-src-');
  await fs.writeFile(path.join(ctx, 'a.txt'), `copied ${marker}\n`);
  await fs.writeFile(path.join(ctx, 'Dockerfile'), `FROM ${base}\nCOPY a.txt /a.txt\nRUN echo "ran ${marker}" > /b.txt\nCMD ["cat", "/a.txt", "/b.txt"]\n`);
  const tag = await classicBuild(ctx);
  cleanups.push(() => dockerRmi(tag));
  srcArchive = path.join(ctx, 'src.tar');
  await docker(['save', '-o', srcArchive, tag]);
  src = `${registry.address}/skopeod/app:1`;
  await skopeoPush(srcArchive, src);
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await registry?.stop();
});

describe('strata pull', () => {
  let home: string;
  beforeAll(async () => {
    home = await scratchDir('strata-pull-home-');
  });

  test('pulls an image skopeo pushed, layer by layer, and docker runs it', async () => {
    const remote = JSON.parse(await skopeo('inspect', '--tls-verify=false', `docker://${src}`)) as { Digest: string; Layers: string[] };
    const r = await strataOk(['pull', src], { env: { STRATA_HOME: home } });
    expect(r.stdout).toContain('1: Pulling from skopeod/app');
    for (const layer of remote.Layers) expect(r.stdout).toContain(`${layer.slice(7, 19)}: Pull complete`);
    expect(r.stdout).toContain(`Digest: ${remote.Digest}`);
    expect(r.stdout).toContain(`Status: Downloaded newer image for ${src}`);
    expect(await runUnderDocker(home, src)).toBe(`copied ${marker}\nran ${marker}`);
  });

  test('a second pull transfers no layer', async () => {
    const before = (await registry.requests()).length;
    const r = await strataOk(['pull', src], { env: { STRATA_HOME: home } });
    expect(r.stdout).toContain(`Status: Image is up to date for ${src}`);
    expect(r.stdout.match(/: Already exists$/gm)).toHaveLength(3);
    expect(blobGets((await registry.requests()).slice(before))).toEqual([]);
  });

  test("Docker Hub names come from STRATA_REGISTRY_MIRRORS, with docker's defaults", async () => {
    await skopeoPush(srcArchive, `${registry.address}/library/mirrored:7`);
    const fresh = await scratchDir('strata-pull-mirror-');
    const r = await strataOk(['pull', 'mirrored:7'], { env: { STRATA_HOME: fresh, STRATA_REGISTRY_MIRRORS: registry.address } });
    expect(r.stdout).toContain('7: Pulling from library/mirrored');
    expect(r.stdout).toContain('Status: Downloaded newer image for mirrored:7');
    expect(r.stdout).toContain('docker.io/library/mirrored:7');
  });

  test("errors name the reference and the registry's answer", async () => {
    const missing = await strata(['pull', `${registry.address}/nothing:here`], { env: { STRATA_HOME: home } });
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain(`error: pull ${registry.address}/nothing:here: registry ${registry.address} answered 404 Not Found to GET /v2/nothing/manifests/here`);
  });
});

describe('zstd layers', () => {
  test('push --compression zstd, then pull: docker runs what strata saved', async () => {
    const ref = `${registry.address}/zstd/busybox:1`;
    await strataOk(['push', '--compression', 'zstd', 'busybox:latest', ref]);
    const raw = JSON.parse(await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${ref}`)) as { layers: { mediaType: string }[] };
    expect(raw.layers.map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+zstd']);
    const home = await scratchDir('strata-zstd-home-');
    await strataOk(['pull', ref], { env: { STRATA_HOME: home } });
    const out = path.join(home, 'out.tar');
    await strataOk(['save', '-o', out, ref], { env: { STRATA_HOME: home } });
    const [loaded] = await dockerLoad(out);
    cleanups.push(() => dockerRmi(loaded!));
    expect(await dockerRun(loaded!, ['echo', 'from zstd'])).toBe('from zstd');
  });
});

describe('builds pull what the store lacks', () => {
  test('FROM an image in a registry: its layers are fetched once, and docker runs the result', async () => {
    const ctx = await scratchDir('strata-pull-from-');
    await fs.writeFile(path.join(ctx, 'Dockerfile'), `FROM ${src}\nRUN cat /a.txt /b.txt > /c.txt\nCMD ["cat", "/c.txt"]\n`);
    const out = path.join(ctx, 'out.tar');
    const before = (await registry.requests()).length;
    await strataOk(['build', '-t', 'pulled-base:1', '--output', `type=docker,dest=${out}`, ctx]);
    // The COPY and RUN layers are new to the worker's store (the base may be known).
    expect(blobGets((await registry.requests()).slice(before)).length).toBeGreaterThanOrEqual(2);
    const [loaded] = await dockerLoad(out);
    cleanups.push(() => dockerRmi(loaded!));
    expect(await dockerRun(loaded!)).toBe(`copied ${marker}\nran ${marker}`);

    // Built again: the base is in the store now, under its tag.
    const again = (await registry.requests()).length;
    await strataOk(['build', '-t', 'pulled-base:2', ctx]);
    expect(blobGets((await registry.requests()).slice(again))).toEqual([]);
  });

  test('COPY --from an image in a registry', async () => {
    const other = `${registry.address}/skopeod/copysrc:1`;
    await skopeoPush(srcArchive, other);
    const ctx = await scratchDir('strata-pull-copy-');
    await fs.writeFile(path.join(ctx, 'Dockerfile'), `FROM busybox\nCOPY --from=${other} /a.txt /from-image.txt\nCMD ["cat", "/from-image.txt"]\n`);
    const out = path.join(ctx, 'out.tar');
    await strataOk(['build', '--output', `type=docker,dest=${out}`, ctx]);
    const [loaded] = await dockerLoad(out);
    cleanups.push(() => dockerRmi(loaded!));
    expect(await dockerRun(loaded!)).toBe(`copied ${marker}`);
  });

  test("FROM an image no registry has fails with the line and the registry's answer", async () => {
    const ctx = await scratchDir('strata-pull-missing-');
    await fs.writeFile(path.join(ctx, 'Dockerfile'), `FROM busybox\nFROM ${registry.address}/nothing:here\n`);
    const r = await strata(['build', ctx]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`Dockerfile:2: FROM ${registry.address}/nothing:here: pull ${registry.address}/nothing:here: registry ${registry.address} answered 404 Not Found`);
  });
});

describe('manifest lists', () => {
  test("two architectures pushed as one index; a pull resolves it to the host's", async () => {
    const arm64 = path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'strata', 'busybox-arm64', 'bin', 'busybox');
    const dir = await scratchDir('strata-multi-');
    const rootfs = path.join(dir, 'arm64.tar');
    await execa('bash', [path.join(REPO_ROOT, 'scripts', 'busybox-rootfs.sh'), rootfs, arm64]);
    await strataOk(['import', '--platform', 'linux/arm64', '--change', 'CMD ["echo", "arm64"]', rootfs, 'busybox-arm64:multi']);
    await strataOk(['import', '--change', 'CMD ["echo", "amd64 from the list"]', process.env.STRATA_TEST_BUSYBOX_TAR!, 'busybox-amd64:multi']);

    const list = `${registry.address}/multi/busybox:1`;
    await strataOk(['manifest', 'create', list, 'busybox-amd64:multi', 'busybox-arm64:multi']);
    const inspected = JSON.parse((await strataOk(['manifest', 'inspect', list])).stdout) as { manifests: { platform: { architecture: string } }[] };
    expect(inspected.manifests.map((m) => m.platform.architecture).sort()).toEqual(['amd64', 'arm64']);
    const digest = (await strataOk(['manifest', 'push', list])).stdout.trim();

    const raw = await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${list}`);
    const index = JSON.parse(raw) as { mediaType: string; manifests: { digest: string; platform: { os: string; architecture: string } }[] };
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests.map((m) => `${m.platform.os}/${m.platform.architecture}`).sort()).toEqual(['linux/amd64', 'linux/arm64']);
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect((await execa('sha256sum', { input: raw })).stdout.slice(0, 64)).toBe(digest.slice(7));

    const home = await scratchDir('strata-multi-home-');
    const r = await strataOk(['pull', list], { env: { STRATA_HOME: home } });
    expect(r.stdout).toContain(`Digest: ${digest}`);
    expect(await runUnderDocker(home, list)).toBe('amd64 from the list');
  });
});

describe('registry auth', () => {
  test("a token server's anonymous pull tokens", async () => {
    let tokens: TokenServer | undefined;
    let secured: TestRegistry | undefined;
    try {
      tokens = await startTokenServer({ anonymousPull: true });
      secured = await startRegistry({ token: tokens.auth });
      const ref = `${secured.address}/anon/busybox:1`;
      const config = await scratchDir('strata-docker-config-');
      await fs.writeFile(
        path.join(config, 'config.json'),
        JSON.stringify({ auths: { [secured.address]: { auth: Buffer.from(`${TOKEN_USER}:${TOKEN_PASSWORD}`).toString('base64') } } }),
      );
      await strataOk(['push', 'busybox:latest', ref], { env: { DOCKER_CONFIG: config } });

      const home = await scratchDir('strata-anon-home-');
      const r = await strataOk(['pull', ref], { env: { STRATA_HOME: home, DOCKER_CONFIG: await scratchDir('strata-docker-config-') } });
      expect(r.stdout).toContain(`Status: Downloaded newer image for ${ref}`);
      expect(tokens.requests).toContainEqual({ scopes: ['repository:anon/busybox:pull'], user: undefined });
    } finally {
      await secured?.stop();
      await tokens?.stop();
    }
  });

  test('a credential helper serves basic-auth credentials; login and logout go through it', async () => {
    // bcrypt (cost 4) of "s3cret", as htpasswd -B writes it.
    const secured = await startRegistry({ htpasswd: 'tester:$2b$04$ZxvNhNAdDaDACie1IJv.GOpSgqMMOIfGSTtvGFh8nu5mzEepj145K' });
    cleanups.push(() => secured.stop());
    const bin = await scratchDir('strata-helper-bin-');
    const state = path.join(bin, 'stored.json');
    // docker-credential-helpers' protocol: the server on stdin for get and erase, JSON for store.
    await fs.writeFile(
      path.join(bin, 'docker-credential-test'),
      `#!/bin/sh
input=$(cat)
echo "$1 $input" >> "${bin}/calls.log"
case "$1" in
  get) if [ -f "${state}" ] && grep -q "\\"ServerURL\\":\\"$input\\"" "${state}"; then cat "${state}"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  store) printf '%s' "$input" > "${state}" ;;
  erase) if [ -f "${state}" ]; then rm "${state}"; else echo "credentials not found in native keychain"; exit 1; fi ;;
esac
`,
      { mode: 0o755 },
    );
    const config = await scratchDir('strata-docker-config-');
    await fs.writeFile(path.join(config, 'config.json'), JSON.stringify({ credHelpers: { [secured.address]: 'test' } }));
    const env = { DOCKER_CONFIG: config, PATH: `${bin}:${process.env.PATH}` };
    const ref = `${secured.address}/helped/busybox:1`;

    const none = await strata(['push', 'busybox:latest', ref], { env });
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toContain(`registry ${secured.address} requires a login, and no credentials for it were found`);

    const wrong = await strata(['login', '-u', TOKEN_USER, '--password-stdin', secured.address], { env, input: 'nope\n' });
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr).toContain('401 Unauthorized');
    const login = await strataOk(['login', '-u', TOKEN_USER, '--password-stdin', secured.address], { env, input: `${TOKEN_PASSWORD}\n` });
    expect(login.stdout).toContain('Login Succeeded');
    expect(JSON.parse(await fs.readFile(state, 'utf8'))).toEqual({ ServerURL: secured.address, Username: TOKEN_USER, Secret: TOKEN_PASSWORD });

    await strataOk(['push', 'busybox:latest', ref], { env });
    const home = await scratchDir('strata-helper-home-');
    await strataOk(['pull', ref], { env: { ...env, STRATA_HOME: home } });
    expect(await fs.readFile(path.join(bin, 'calls.log'), 'utf8')).toContain(`get ${secured.address}`);

    expect((await strataOk(['logout', secured.address], { env })).stdout).toContain(`Removing login credentials for ${secured.address}`);
    await expect(fs.stat(state)).rejects.toThrow();
  });

  test("login without a helper writes config.json's auths, as docker login does", async () => {
    const secured = await startRegistry({ htpasswd: 'tester:$2b$04$ZxvNhNAdDaDACie1IJv.GOpSgqMMOIfGSTtvGFh8nu5mzEepj145K' });
    cleanups.push(() => secured.stop());
    const config = await scratchDir('strata-docker-config-');
    await strataOk(['login', '-u', TOKEN_USER, '--password-stdin', secured.address], { env: { DOCKER_CONFIG: config }, input: TOKEN_PASSWORD });
    const written = JSON.parse(await fs.readFile(path.join(config, 'config.json'), 'utf8')) as { auths: Record<string, { auth: string }> };
    expect(Buffer.from(written.auths[secured.address]!.auth, 'base64').toString()).toBe(`${TOKEN_USER}:${TOKEN_PASSWORD}`);
    expect((await fs.stat(path.join(config, 'config.json'))).mode & 0o777).toBe(0o600);
    // skopeo reads what strata wrote.
    await strataOk(['push', 'busybox:latest', `${secured.address}/logged/busybox:1`], { env: { DOCKER_CONFIG: config } });
    await execa('skopeo', ['inspect', '--tls-verify=false', '--authfile', path.join(config, 'config.json'), `docker://${secured.address}/logged/busybox:1`]);
    await strataOk(['logout', secured.address], { env: { DOCKER_CONFIG: config } });
    expect(JSON.parse(await fs.readFile(path.join(config, 'config.json'), 'utf8'))).toEqual({ auths: {} });
  });
});
