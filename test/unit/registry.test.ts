// The registry client's pure parts: where a reference is pushed (host, repository, scheme),
// WWW-Authenticate challenges, and credentials from docker's config.json.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findCredentials, parseChallenge } from '../../engine/registry/auth.js';
import { registryReference } from '../../engine/registry/reference.js';

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

describe('parseChallenge', () => {
  const rows: [string, ReturnType<typeof parseChallenge>][] = [
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push"',
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull,push' } },
    ],
    ['Basic realm="strata-test"', { scheme: 'basic', params: { realm: 'strata-test' } }],
    ['bearer realm=https://t.example/token, service=reg', { scheme: 'bearer', params: { realm: 'https://t.example/token', service: 'reg' } }],
    ['Bearer realm="a \\"quoted\\" realm"', { scheme: 'bearer', params: { realm: 'a "quoted" realm' } }],
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
