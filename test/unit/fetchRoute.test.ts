// Where ADD's downloads and git clones may connect: never this host or a network the worker
// keeps builds from, unless the build holds network.host; git is pinned to the address that
// was checked, so a second DNS answer cannot redirect it.
import { classifyAddSource, type AddSource } from '../../engine/plan/addSource.js';
import { fetchRefusal, inNetwork } from '../../engine/runtime/network.js';
import { gitRoute } from '../../engine/steps/add.js';

const DENY = { STRATA_RUN_DENY_NETWORKS: '10.5.0.0/16,172.20.0.7' };

test.each([
  ['10.5.0.1', '10.5.0.0/16', true],
  ['10.5.255.255', '10.5.0.0/16', true],
  ['10.6.0.0', '10.5.0.0/16', false],
  ['172.20.0.7', '172.20.0.7/32', true],
  ['172.20.0.8', '172.20.0.7/32', false],
  ['8.8.8.8', '0.0.0.0/0', true],
  ['::1', '0.0.0.0/0', false],
])('inNetwork(%s, %s) is %s', (address, cidr, inside) => expect(inNetwork(address, cidr)).toBe(inside));

test('a fetch may not go to this host nor a denied network, unless the build holds network.host', () => {
  expect(fetchRefusal('127.0.0.1', false, DENY)).toMatch(/is this host/);
  expect(fetchRefusal('169.254.169.254', false, DENY)).toMatch(/is this host/);
  expect(fetchRefusal('10.5.3.4', false, DENY)).toBe('is in 10.5.0.0/16, a network this worker keeps builds from (STRATA_RUN_DENY_NETWORKS)');
  expect(fetchRefusal('::ffff:10.5.3.4', false, DENY)).toMatch(/is in 10\.5\.0\.0\/16/);
  expect(fetchRefusal('172.20.0.7', false, DENY)).toMatch(/is in 172\.20\.0\.7\/32/);
  expect(fetchRefusal('172.20.0.8', false, DENY)).toBeUndefined();
  expect(fetchRefusal('93.184.216.34', false, DENY)).toBeUndefined();
  expect(fetchRefusal('127.0.0.1', true, DENY)).toBeUndefined();
  expect(fetchRefusal('10.5.3.4', true, DENY)).toBeUndefined();
});

function git(src: string): AddSource & { kind: 'git' } {
  const s = classifyAddSource(src);
  if (s?.kind !== 'git') throw new Error(`${src} is not a git source`);
  return s;
}

/** A resolver that answers `addresses` for every name, and counts its calls. */
function resolver(...addresses: string[]) {
  const asked: string[] = [];
  return { asked, lookup: async (host: string) => (asked.push(host), addresses) };
}

describe('gitRoute', () => {
  test('an http(s) remote keeps its URL; curl is pinned to the checked address and follows no redirect', async () => {
    const r = resolver('93.184.216.34', '93.184.216.35');
    expect(await gitRoute(git('https://example.com/repo.git#main'), false, r.lookup)).toEqual({
      remote: 'https://example.com/repo.git',
      config: ['-c', 'http.curloptResolve=example.com:443:93.184.216.34', '-c', 'http.followRedirects=false'],
      env: {},
    });
    expect((await gitRoute(git('http://example.com:8080/r.git'), false, r.lookup)).config[1]).toBe('http.curloptResolve=example.com:8080:93.184.216.34');
    expect(r.asked).toEqual(['example.com', 'example.com']);
  });

  test('git:// and ssh remotes are given the checked address; ssh keeps the name for its known hosts', async () => {
    const r = resolver('93.184.216.34');
    expect(await gitRoute(git('git://example.com/repo.git'), false, r.lookup)).toEqual({ remote: 'git://93.184.216.34/repo.git', config: [], env: {} });
    expect(await gitRoute(git('ssh://git@example.com:2222/repo.git'), false, r.lookup)).toEqual({
      remote: 'ssh://git@93.184.216.34:2222/repo.git',
      config: [],
      env: { GIT_SSH_COMMAND: 'ssh -o HostKeyAlias=example.com -o BatchMode=yes' },
    });
    expect((await gitRoute(git('git@example.com:org/repo.git#v1'), false, r.lookup)).remote).toBe('git@93.184.216.34:org/repo.git');
    expect((await gitRoute(git('git://example.com/repo.git'), false, resolver('2001:db8::1').lookup)).remote).toBe('git://[2001:db8::1]/repo.git');
  });

  test('a name with any address on this host or in a denied network is refused, naming both', async () => {
    await expect(gitRoute(git('https://intranet.example/repo.git'), false, resolver('93.184.216.34', '127.0.0.1').lookup)).rejects.toThrow(
      'ADD failed: git fetch https://intranet.example/repo.git: intranet.example (127.0.0.1) is this host (loopback, link-local or one of its own addresses); that needs the network.host entitlement: strata build --allow network.host',
    );
    await expect(gitRoute(git('git@localhost:repo.git'), false, resolver('::1').lookup)).rejects.toThrow(/localhost \(::1\) is this host/);
    await expect(gitRoute(git('git://127.0.0.1:9418/repo.git'), false, resolver().lookup)).rejects.toThrow(/127\.0\.0\.1 is this host/);
    await expect(gitRoute(git('git://[::1]/repo.git'), false, resolver().lookup)).rejects.toThrow(/::1 is this host/);
    await expect(gitRoute(git('ssh://git@169.254.169.254/repo.git'), false, resolver().lookup)).rejects.toThrow(/is this host/);
  });

  test('network.host and file:// remotes go as given, unresolved', async () => {
    const r = resolver('127.0.0.1');
    expect(await gitRoute(git('https://localhost/repo.git'), true, r.lookup)).toEqual({ remote: 'https://localhost/repo.git', config: [], env: {} });
    expect(await gitRoute(git('file:///srv/repo.git'), false, r.lookup)).toEqual({ remote: 'file:///srv/repo.git', config: [], env: {} });
    expect(r.asked).toEqual([]);
  });

  test('an unknown name is a user error; a resolver that fails otherwise may be retried', async () => {
    const fail = (code: string) => async () => {
      throw Object.assign(new Error(code), { code });
    };
    await expect(gitRoute(git('https://nowhere.invalid/r.git'), false, fail('ENOTFOUND'))).rejects.toMatchObject({
      userError: true,
      message: 'ADD failed: git fetch https://nowhere.invalid/r.git: cannot resolve nowhere.invalid (ENOTFOUND)',
    });
    await expect(gitRoute(git('https://slow.example/r.git'), false, fail('EAI_AGAIN'))).rejects.toMatchObject({ userError: false });
  });
});
