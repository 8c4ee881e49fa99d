// The registry client's pure parts: where a reference points (host, repository, scheme,
// docker's defaults, mirrors), WWW-Authenticate challenges, credentials from docker's
// config.json and credential helpers (a shell script stands in for a real helper), manifest
// parsing and platform selection, the upload Range arithmetic.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sha256 } from '../../engine/digest.js';
import type { Platform } from '../../engine/image/platform.js';
import type { ImageIndex } from '../../engine/image/types.js';
import { eraseCredentials, findCredentials, parseChallenge, storeCredentials } from '../../engine/registry/auth.js';
import { nextOffset } from '../../engine/registry/client.js';
import { parseManifest, selectManifest } from '../../engine/registry/manifest.js';
import { pullSources, registryReference } from '../../engine/registry/reference.js';

describe('registryReference', () => {
  const rows: [string, { registry: string; host: string; repository: string; reference: string; scheme: 'http' | 'https' }][] = [
    ['127.0.0.1:5000/app:1', { registry: '127.0.0.1:5000', host: '127.0.0.1:5000', repository: 'app', reference: '1', scheme: 'http' }],
    ['localhost:5000/a/b', { registry: 'localhost:5000', host: 'localhost:5000', repository: 'a/b', reference: 'latest', scheme: 'http' }],
    ['localhost/app:2', { registry: 'localhost', host: 'localhost', repository: 'app', reference: '2', scheme: 'http' }],
    ['127.1.2.3:80/x:y', { registry: '127.1.2.3:80', host: '127.1.2.3:80', repository: 'x', reference: 'y', scheme: 'http' }],
    ['ghcr.io/org/app:v1', { registry: 'ghcr.io', host: 'ghcr.io', repository: 'org/app', reference: 'v1', scheme: 'https' }],
    ['registry:5000/app:1', { registry: 'registry:5000', host: 'registry:5000', repository: 'app', reference: '1', scheme: 'https' }],
    ['busybox', { registry: 'docker.io', host: 'registry-1.docker.io', repository: 'library/busybox', reference: 'latest', scheme: 'https' }],
    ['myorg/app:1', { registry: 'docker.io', host: 'registry-1.docker.io', repository: 'myorg/app', reference: '1', scheme: 'https' }],
    ['docker.io/library/busybox:1', { registry: 'docker.io', host: 'registry-1.docker.io', repository: 'library/busybox', reference: '1', scheme: 'https' }],
    // a name whose first component has no dot, port or "localhost" is a Hub repository
    ['myhost/app', { registry: 'docker.io', host: 'registry-1.docker.io', repository: 'myhost/app', reference: 'latest', scheme: 'https' }],
    [`ghcr.io/o/a@sha256:${'b'.repeat(64)}`, { registry: 'ghcr.io', host: 'ghcr.io', repository: 'o/a', reference: `sha256:${'b'.repeat(64)}`, scheme: 'https' }],
    // a tag and a digest: the digest is what is fetched, as docker does
    [
      `ubuntu:24.04@sha256:${'c'.repeat(64)}`,
      { registry: 'docker.io', host: 'registry-1.docker.io', repository: 'library/ubuntu', reference: `sha256:${'c'.repeat(64)}`, scheme: 'https' },
    ],
    ['ubuntu', { registry: 'docker.io', host: 'registry-1.docker.io', repository: 'library/ubuntu', reference: 'latest', scheme: 'https' }],
    ['index.docker.io/library/ubuntu:22.04', { registry: 'index.docker.io', host: 'index.docker.io', repository: 'library/ubuntu', reference: '22.04', scheme: 'https' }],
  ];
  test.each(rows)('%s', (input, want) => {
    expect(registryReference(input, {})).toEqual(want);
  });

  test('STRATA_INSECURE_REGISTRIES adds http registries, by host:port or host', () => {
    expect(registryReference('registry:5000/app', { STRATA_INSECURE_REGISTRIES: 'registry:5000' }).scheme).toBe('http');
    expect(registryReference('registry:5000/app', { STRATA_INSECURE_REGISTRIES: 'other:5000, registry' }).scheme).toBe('http');
    expect(registryReference('registry:5001/app', { STRATA_INSECURE_REGISTRIES: 'registry:5000' }).scheme).toBe('https');
  });

  test('an invalid name is a user error', () => {
    expect(() => registryReference('127.0.0.1:5000/App:1', {})).toThrow('repository names must be lowercase');
  });
});

describe('pullSources (STRATA_REGISTRY_MIRRORS)', () => {
  const hub = registryReference('ubuntu:24.04', {});
  const rows: [string, string[]][] = [
    ['', ['https://registry-1.docker.io']],
    ['mirror.example:5000', ['https://mirror.example:5000', 'https://registry-1.docker.io']],
    ['127.0.0.1:5000, https://m2.example', ['http://127.0.0.1:5000', 'https://m2.example', 'https://registry-1.docker.io']],
    ['http://localhost:5000/', ['http://localhost:5000', 'https://registry-1.docker.io']],
  ];
  test.each(rows)('%j', (mirrors, want) => {
    const sources = pullSources(hub, { STRATA_REGISTRY_MIRRORS: mirrors });
    expect(sources.map((s) => `${s.scheme}://${s.host}`)).toEqual(want);
    for (const s of sources) expect(s.repository).toBe('library/ubuntu');
  });

  test('other registries are not mirrored', () => {
    expect(pullSources(registryReference('ghcr.io/o/a:1', {}), { STRATA_REGISTRY_MIRRORS: 'm.example' }).map((s) => s.host)).toEqual(['ghcr.io']);
  });

  test.each(['ftp://m.example', 'http://m.example', 'not a host'])('%s is refused', (mirror) => {
    expect(() => pullSources(hub, { STRATA_REGISTRY_MIRRORS: mirror })).toThrow('STRATA_REGISTRY_MIRRORS');
  });
});

describe('parseChallenge', () => {
  const rows: [string, ReturnType<typeof parseChallenge>][] = [
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push"',
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull,push' } },
    ],
    ['Basic realm="strata-test"', { scheme: 'basic', params: { realm: 'strata-test' } }],
    ['bearer realm=https://t.example/token, service=reg', { scheme: 'bearer', params: { realm: 'https://t.example/token', service: 'reg' } }],
    ['Bearer realm="a \\"quoted\\" realm"', { scheme: 'bearer', params: { realm: 'a "quoted" realm' } }],
    [
      'Bearer realm="https://t/x",error="insufficient_scope",scope="repository:a:pull repository:b:pull"',
      { scheme: 'bearer', params: { realm: 'https://t/x', error: 'insufficient_scope', scope: 'repository:a:pull repository:b:pull' } },
    ],
    ['Basic', { scheme: 'basic', params: {} }],
    ['', undefined],
  ];
  test.each(rows)('%s', (header, want) => {
    expect(parseChallenge(header)).toEqual(want);
  });
});

describe('findCredentials', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-auth-'));
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    await fs.writeFile(
      path.join(dir, 'config.json'),
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: b64('hubuser:hub:pass') },
          'ghcr.io': { auth: b64('gh:token') },
          'http://127.0.0.1:5000': { username: 'u', password: 'p' },
          'broken.example': { auth: b64('no-colon') },
        },
      }),
    );
  });
  afterAll(() => fs.rm(dir, { recursive: true, force: true }));

  const rows: [string, { username: string; password: string } | undefined][] = [
    ['docker.io', { username: 'hubuser', password: 'hub:pass' }],
    ['ghcr.io', { username: 'gh', password: 'token' }],
    ['127.0.0.1:5000', { username: 'u', password: 'p' }],
    ['127.0.0.1:5001', undefined],
    ['broken.example', undefined],
  ];
  test.each(rows)('%s', async (registry, want) => {
    expect(await findCredentials(registry, path.join(dir, 'config.json'))).toEqual(want);
  });

  test('no config.json means no credentials', async () => {
    expect(await findCredentials('ghcr.io', path.join(dir, 'missing.json'))).toBeUndefined();
  });
});

describe('credential helpers and identity tokens', () => {
  let dir: string;
  let savedPath: string | undefined;
  const config = () => path.join(dir, 'config.json');
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-helpers-'));
    // Two fake helpers: "one" knows ghcr.io (a password) and hub (an identity token); "broken" fails.
    await fs.writeFile(
      path.join(dir, 'docker-credential-one'),
      `#!/bin/sh
read server
echo "$1 $server" >> "${dir}/calls"
case "$1:$server" in
  get:ghcr.io) echo '{"ServerURL":"ghcr.io","Username":"gh","Secret":"pw"}' ;;
  get:https://index.docker.io/v1/) echo '{"ServerURL":"https://index.docker.io/v1/","Username":"<token>","Secret":"refresh-me"}' ;;
  get:*) echo "credentials not found in native keychain"; exit 1 ;;
  store:*|erase:*) ;;
esac
`,
      { mode: 0o755 },
    );
    await fs.writeFile(path.join(dir, 'docker-credential-broken'), '#!/bin/sh\necho "keychain locked" >&2\nexit 3\n', { mode: 0o755 });
    savedPath = process.env.PATH;
    process.env.PATH = `${dir}:${savedPath}`;
  });
  afterAll(async () => {
    process.env.PATH = savedPath;
    await fs.rm(dir, { recursive: true, force: true });
  });

  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const rows: [string, object, string, object | undefined][] = [
    ['credHelpers entry', { credHelpers: { 'ghcr.io': 'one' } }, 'ghcr.io', { username: 'gh', password: 'pw' }],
    ['credsStore for every registry', { credsStore: 'one' }, 'ghcr.io', { username: 'gh', password: 'pw' }],
    ['credsStore, hub identity token', { credsStore: 'one' }, 'docker.io', { username: '', password: '', identityToken: 'refresh-me' }],
    ['helper without an entry: none', { credsStore: 'one' }, 'quay.io', undefined],
    ['credHelpers wins over auths', { credHelpers: { 'ghcr.io': 'one' }, auths: { 'ghcr.io': { auth: b64('a:b') } } }, 'ghcr.io', { username: 'gh', password: 'pw' }],
    ['credHelpers for another registry: auths', { credHelpers: { 'quay.io': 'one' }, auths: { 'ghcr.io': { auth: b64('a:b') } } }, 'ghcr.io', { username: 'a', password: 'b' }],
    ['auths identitytoken', { auths: { 'ghcr.io': { auth: b64('u:'), identitytoken: 'tok' } } }, 'ghcr.io', { username: 'u', password: '', identityToken: 'tok' }],
  ];
  test.each(rows)('%s', async (_name, cfg, registry, want) => {
    await fs.writeFile(config(), JSON.stringify(cfg));
    expect(await findCredentials(registry, config())).toEqual(want);
  });

  test('the helper is asked for the server as docker names it', async () => {
    await fs.writeFile(config(), JSON.stringify({ credsStore: 'one' }));
    await findCredentials('docker.io', config());
    expect(await fs.readFile(path.join(dir, 'calls'), 'utf8')).toContain('get https://index.docker.io/v1/');
  });

  test('a failing helper or a missing one is a clear error', async () => {
    await fs.writeFile(config(), JSON.stringify({ credsStore: 'broken' }));
    await expect(findCredentials('ghcr.io', config())).rejects.toThrow('credential helper: docker-credential-broken get failed: keychain locked');
    await fs.writeFile(config(), JSON.stringify({ credsStore: 'absent' }));
    await expect(findCredentials('ghcr.io', config())).rejects.toThrow('docker-credential-absent is not on PATH');
    await fs.writeFile(config(), JSON.stringify({ credsStore: '../evil' }));
    await expect(findCredentials('ghcr.io', config())).rejects.toThrow('invalid name');
  });

  test("store and erase keep other keys, replace the registry's entry, mode 0600", async () => {
    await fs.writeFile(config(), JSON.stringify({ auths: { 'https://ghcr.io': { auth: b64('old:old') }, 'quay.io': { auth: b64('q:q') } }, psFormat: 'x' }));
    await storeCredentials('ghcr.io', { username: 'new', password: 'pw' }, config());
    const stored = JSON.parse(await fs.readFile(config(), 'utf8'));
    expect(stored).toEqual({ auths: { 'quay.io': { auth: b64('q:q') }, 'ghcr.io': { auth: b64('new:pw') } }, psFormat: 'x' });
    expect((await fs.stat(config())).mode & 0o777).toBe(0o600);
    expect(await eraseCredentials('ghcr.io', config())).toBe(true);
    expect(await eraseCredentials('ghcr.io', config())).toBe(false);
    expect(JSON.parse(await fs.readFile(config(), 'utf8')).auths).toEqual({ 'quay.io': { auth: b64('q:q') } });
  });
});

describe('selectManifest', () => {
  const entry = (arch: string, variant?: string, os = 'linux', mediaType = 'application/vnd.oci.image.manifest.v1+json') => ({
    mediaType,
    digest: sha256(`${os}/${arch}/${variant ?? ''}/${mediaType}`),
    size: 1,
    platform: { os, architecture: arch, ...(variant ? { variant } : {}) },
  });
  const index: ImageIndex = {
    schemaVersion: 2,
    manifests: [
      entry('unknown', undefined, 'unknown'),
      entry('arm', 'v6'),
      entry('arm', 'v7'),
      entry('arm64', 'v8'),
      entry('amd64'),
      entry('amd64', undefined, 'windows'),
      entry('s390x', undefined, 'linux', 'application/vnd.in-toto+json'),
    ],
  };
  const rows: [string, Platform, string | undefined][] = [
    ['linux/amd64', { os: 'linux', architecture: 'amd64' }, 'linux/amd64/'],
    ['linux/arm64 (v8 by default)', { os: 'linux', architecture: 'arm64' }, 'linux/arm64/v8'],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm', variant: 'v7' }, 'linux/arm/v7'],
    ['linux/arm/v5: none', { os: 'linux', architecture: 'arm', variant: 'v5' }, undefined],
    ['linux/arm without a variant: the first arm', { os: 'linux', architecture: 'arm' }, 'linux/arm/v6'],
    ['an attestation never matches', { os: 'linux', architecture: 's390x' }, undefined],
    ['windows/amd64', { os: 'windows', architecture: 'amd64' }, 'windows/amd64/'],
  ];
  test.each(rows)('%s', (_name, want, expected) => {
    if (expected === undefined) {
      expect(() => selectManifest(index, want, 'pull x')).toThrow(
        /pull x: no manifest for .* in the index \(it has: unknown\/unknown, linux\/arm\/v6, linux\/arm\/v7, linux\/arm64\/v8, linux\/amd64, windows\/amd64\)/,
      );
      return;
    }
    const [os, arch, variant] = expected.split('/');
    expect(selectManifest(index, want, 'pull x').digest).toBe(sha256(`${os}/${arch}/${variant}/application/vnd.oci.image.manifest.v1+json`));
  });

  test('docker manifest-list entries match as OCI ones', () => {
    const docker: ImageIndex = { schemaVersion: 2, manifests: [entry('amd64', undefined, 'linux', 'application/vnd.docker.distribution.manifest.v2+json')] };
    expect(selectManifest(docker, { os: 'linux', architecture: 'amd64' }, 'pull x').mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
  });
});

describe('parseManifest', () => {
  const d = `sha256:${'a'.repeat(64)}`;
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'x', digest: d, size: 2 },
    layers: [{ mediaType: 'y', digest: d, size: 3 }],
  };
  const rows: [string, unknown, string, string][] = [
    ['not JSON', 'nope', '', 'not JSON'],
    ['schema 1', { schemaVersion: 1, name: 'x' }, '', 'docker schema 1 manifest'],
    ['a bad layer digest', { ...manifest, layers: [{ mediaType: 'y', digest: 'md5:x', size: 3 }] }, '', 'layers[0] has no sha256 digest'],
    ['a negative size', { ...manifest, config: { mediaType: 'x', digest: d, size: -1 } }, '', 'config has no valid size'],
    ['an unknown type', { ...manifest, mediaType: 'text/html' }, '', 'unknown media type'],
    ['too many layers', { ...manifest, layers: Array(1001).fill(manifest.layers[0]) }, '', 'more than 1000 layers'],
    ['an index without manifests', { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json' }, '', 'an index without manifests'],
  ];
  test.each(rows)('%s is refused', (_name, doc, header, message) => {
    const bytes = Buffer.from(typeof doc === 'string' ? doc : JSON.stringify(doc));
    expect(() => parseManifest(bytes, header, 'pull x')).toThrow(message);
  });

  test('the media type comes from the document, else from Content-Type', () => {
    expect(parseManifest(Buffer.from(JSON.stringify(manifest)), 'text/plain', 'pull x')).toMatchObject({ kind: 'image', mediaType: manifest.mediaType });
    const { mediaType: _m, ...bare } = manifest;
    expect(parseManifest(Buffer.from(JSON.stringify(bare)), 'application/vnd.oci.image.manifest.v1+json', 'pull x')).toMatchObject({
      kind: 'image',
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
    });
    const list = { schemaVersion: 2, manifests: [] };
    expect(parseManifest(Buffer.from(JSON.stringify(list)), 'application/vnd.docker.distribution.manifest.list.v2+json', 'pull x')).toMatchObject({ kind: 'index' });
  });
});

describe("nextOffset (an upload session's Range header)", () => {
  const rows: [string | undefined, number][] = [
    ['0-1023', 1024],
    ['bytes=0-99', 100],
    // distribution answers 0-0 for an empty session (and for one byte): resend from 0
    ['0-0', 0],
    [undefined, 0],
    ['', 0],
    ['5-10', 0],
    ['0-abc', 0],
    ['0-99999999999999999999', 0],
  ];
  test.each(rows)('%j → %d', (range, want) => {
    expect(nextOffset(range)).toBe(want);
  });
});
