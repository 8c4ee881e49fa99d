// The --cache-to/--cache-from spec: BuildKit's type=registry form (and a bare repository),
// everything else a usage error naming the flag; at most 8 --cache-from repositories.
import { buildSettings, parseCacheSpec } from '../../client/options.js';

test('type=registry,ref=REGISTRY/REPO is taken, mode=max as well, a bare repository too', () => {
  expect(parseCacheSpec('type=registry,ref=127.0.0.1:5000/cache', '--cache-to')).toEqual({ ref: '127.0.0.1:5000/cache' });
  expect(parseCacheSpec('type=registry,ref=127.0.0.1:5000/cache,mode=max', '--cache-to')).toEqual({ ref: '127.0.0.1:5000/cache' });
  expect(parseCacheSpec('ghcr.io/me/cache', '--cache-from')).toEqual({ ref: 'ghcr.io/me/cache' });
});

test.each([
  ['type=local,dest=/tmp/x', /--cache-to type=local,dest=\/tmp\/x: unsupported type "local"/],
  ['ref=r.example/cache', /unsupported type ""/],
  ['type=registry', /needs ref=REGISTRY\/REPO/],
  ['type=registry,ref=r.example/cache:tag', /without tag or digest/],
  ['type=registry,ref=r.example/cache@sha256:' + '0'.repeat(64), /without tag or digest/],
  ['type=registry,ref=r.example/cache,mode=all', /mode must be min or max/],
  ['type=registry,ref=r.example/cache,compression=zstd', /unknown field "compression"/],
  ['type=registry,,', /expected KEY=VALUE/],
])('%s is refused', (spec, message) => {
  expect(() => parseCacheSpec(spec, '--cache-to')).toThrow(message);
});

test('a build reads from at most 8 repositories, each once', () => {
  const flags = { tag: [], buildArg: [] };
  const nine = Array.from({ length: 9 }, (_, i) => `type=registry,ref=r.example/c${i}`);
  expect(() => buildSettings({ ...flags, cacheFrom: nine }, 'build')).toThrow('at most 8 repositories');
  expect(buildSettings({ ...flags, cacheFrom: ['r.example/a', 'type=registry,ref=r.example/a'] }, 'build').cacheFrom).toEqual(['r.example/a']);
  expect(buildSettings(flags, 'build').cacheFrom).toBeUndefined();
});
