// The build sandbox, attacked as a hostile Dockerfile would: a RUN step must not reach the
// host's loopback (the Temporal server, its Web UI, a service the test runs), the host's
// kernel through new namespaces or mounts, or host files through odd context names and
// symlinks left for the clean-up; ADD must not fetch from this host. Each check has a
// counterpart that shows the probe works (network.host granted, an "internet" namespace).
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { STRATA_BIN, strata, strataOk } from '../helpers/cli.js';

const dirs: string[] = [];
const temporalPort = Number(process.env.STRATA_TEMPORAL_PORT);
let loopback: net.Server;
let loopbackPort: number;
const loopbackSockets = new Set<net.Socket>();
/** How many connections the loopback service has had. */
let loopbackConnections = 0;

beforeAll(async () => {
  // A service on the host's loopback that answers whoever connects.
  loopback = net.createServer((s) => {
    s.on('error', () => {}); // a probe hangs up at once
    loopbackConnections++;
    loopbackSockets.add(s);
    s.on('close', () => loopbackSockets.delete(s));
    s.end('loopback-service\n');
  });
  await new Promise<void>((resolve) => loopback.listen(0, '127.0.0.1', resolve));
  loopbackPort = (loopback.address() as net.AddressInfo).port;
});

afterAll(async () => {
  for (const s of loopbackSockets) s.destroy();
  await new Promise<void>((resolve) => loopback.close(() => resolve()));
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

async function tempDir(prefix = 'strata-sandbox-'): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

async function context(lines: string[], files: Record<string, string> = {}): Promise<string> {
  const dir = await tempDir();
  await fs.writeFile(path.join(dir, 'Dockerfile'), lines.join('\n') + '\n');
  for (const [name, text] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await fs.writeFile(path.join(dir, name), text);
  }
  return dir;
}

/** A shell function for RUN: `probe HOST PORT` prints whether a TCP connection got through. */
const PROBE = 'probe() { if nc -w 3 "$1" "$2" -e true 2>/dev/null; then echo "reached $1:$2"; else echo "blocked $1:$2"; fi; }';

function probeAll(targets: [string, number][]): string {
  return `RUN ${PROBE}; ${targets.map(([h, p]) => `probe ${h} ${p}`).join('; ')}`;
}

describe('RUN and the host network', () => {
  const targets = (): [string, number][] => [
    ['127.0.0.1', temporalPort],
    ['127.0.0.1', temporalPort + 1000],
    ['127.0.0.1', loopbackPort],
    // slirp's gateway is the host's loopback unless slirp is told otherwise
    ['10.0.2.2', loopbackPort],
  ];

  test('the default network reaches neither the Temporal server, its Web UI nor a loopback service', async () => {
    const ctx = await context(['FROM busybox', probeAll(targets())]);
    const r = await strataOk(['build', ctx]);
    for (const [h, p] of targets()) expect(r.stdout).toContain(`blocked ${h}:${p}`);
    expect(r.stdout).not.toMatch(/^reached/m);
  });

  test("the host's own addresses are unroutable from the default network", async () => {
    const own = Object.values(os.networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
    if (!own) return; // a host with loopback only has no address to hide
    // "Permission denied" is the prohibit route; through slirp the host would answer "refused".
    const ctx = await context(['FROM busybox', `RUN nc -w 3 ${own} ${loopbackPort} -e true 2>&1 | tee /dev/stderr | grep -q 'Permission denied'`]);
    await strataOk(['build', ctx]);
  });

  test('with --allow network.host, --network=host reaches them all (the probe can fail)', async () => {
    const ctx = await context(['FROM busybox', probeAll(targets().slice(0, 3))]);
    const r = await strataOk(['build', '--allow', 'network.host', '--network', 'host', ctx]);
    for (const [h, p] of targets().slice(0, 3)) expect(r.stdout).toContain(`reached ${h}:${p}`);
  });

  test('--network=host without the entitlement fails naming the step and the flag to add', async () => {
    const ctx = await context(['FROM busybox', 'RUN --network=host echo on the host']);
    const r = await strata(['build', ctx]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('Step 2/2 : RUN --network=host echo on the host (line 2)');
    expect(r.stderr).toContain('needs the network.host entitlement: strata build --allow network.host');
    expect(r.stdout.split('\n')).not.toContain('on the host');

    const buildWide = await strata(['build', '--network', 'host', await context(['FROM busybox', 'RUN echo on the host'])]);
    expect(buildWide.exitCode).toBe(1);
    expect(buildWide.stderr).toContain('Step 2/2 : RUN echo on the host (line 2)');
    expect(buildWide.stderr).toContain('network.host entitlement');
  });

  test('a worker started with --deny-entitlement network.host refuses it even to a build that asks', async () => {
    await withOwnWorker(['--deny-entitlement', 'network.host'], {}, async (queue) => {
      const ctx = await context(['FROM busybox', 'RUN --network=host echo on the host']);
      const r = await strata(['build', '--allow', 'network.host', ctx], { env: { STRATA_TASK_QUEUE: queue } });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain('Step 2/2 : RUN --network=host echo on the host (line 2)');
      expect(r.stderr).toContain('this worker refuses the network.host entitlement');
    });
  });
});

/** Runs `fn` with a worker of its own (extra flags and environment) polling a queue of its own. */
async function withOwnWorker(flags: string[], env: Record<string, string>, fn: (queue: string) => Promise<void>): Promise<void> {
  const queue = `strata-test-own-${randomBytes(3).toString('hex')}`;
  const log = path.join(await tempDir(), 'worker.log');
  const worker = execa('node', [STRATA_BIN, 'worker', ...flags], {
    env: { ...process.env, ...env, STRATA_TASK_QUEUE: queue },
    stdout: 'ignore',
    stderr: { file: log }, // the banner says when it polls
    reject: false,
  });
  try {
    for (let i = 0; !(await fs.readFile(log, 'utf8').catch(() => '')).includes('polling task queue'); i++) {
      if (i > 300 || worker.exitCode !== null) throw new Error(`the worker did not start: ${await fs.readFile(log, 'utf8').catch(() => '')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await fn(queue);
  } finally {
    worker.kill('SIGTERM');
    await worker;
  }
}

describe('RUN and the outside world', () => {
  // "The internet": a network namespace on a veth pair, with a server inside it.
  const id = randomBytes(3).toString('hex');
  const ns = `strata-test-inet-${id}`;
  const hostSide = `sti${id}h`;
  let server: ResultPromise | undefined;
  const ip = (...args: string[]) => execa('ip', args);

  beforeAll(async () => {
    await ip('netns', 'add', ns);
    await ip('link', 'add', hostSide, 'type', 'veth', 'peer', 'name', `sti${id}n`);
    await ip('link', 'set', `sti${id}n`, 'netns', ns);
    await ip('addr', 'add', '10.213.0.1/30', 'dev', hostSide);
    await ip('link', 'set', hostSide, 'up');
    await ip('-n', ns, 'addr', 'add', '10.213.0.2/30', 'dev', `sti${id}n`);
    await ip('-n', ns, 'link', 'set', `sti${id}n`, 'up');
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    server = execa(
      'ip',
      ['netns', 'exec', ns, 'node', '-e', "require('net').createServer((s) => s.end('hello from the internet\\n')).listen(18080, '10.213.0.2', () => console.log('listening'))"],
      {
        reject: false,
        buffer: false,
      },
    );
    await new Promise<void>((resolve, reject) => {
      server!.stdout!.once('data', () => resolve());
      void server!.then((r) => reject(new Error(`the internet's server exited: ${String(r.stderr)}`)));
    });
  });

  afterAll(async () => {
    server?.kill('SIGKILL');
    await server;
    await execa('ip', ['netns', 'del', ns], { reject: false }); // takes the veth pair with it
    await execa('ip', ['link', 'del', hostSide], { reject: false });
  });

  test('--network=default reaches a server out there, and answers DNS through slirp', async () => {
    const ctx = await context(['FROM busybox', 'RUN nc -w 5 10.213.0.2 18080 </dev/null > /answer && cat /answer && grep -x "nameserver 10.0.2.3" /etc/resolv.conf']);
    const r = await strataOk(['build', '--network', 'default', ctx]);
    expect(r.stdout).toContain('hello from the internet');
  });

  test('a worker with STRATA_RUN_DENY_NETWORKS keeps RUN steps from that network (a compose deployment)', async () => {
    await withOwnWorker([], { STRATA_RUN_DENY_NETWORKS: '10.213.0.0/30' }, async (queue) => {
      const ctx = await context(['FROM busybox', `RUN ${PROBE}; probe 10.213.0.2 18080`]);
      const r = await strataOk(['build', ctx], { env: { STRATA_TASK_QUEUE: queue } });
      expect(r.stdout).toContain('blocked 10.213.0.2:18080');
    });
  });

  // A git server out there: git daemon in the same namespace, serving one repository.
  let gitDaemon: ResultPromise | undefined;
  beforeAll(async () => {
    const root = await tempDir();
    const work = path.join(root, 'work');
    const gitIn = (cwd: string, ...args: string[]) => execa('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', '-c', 'init.defaultBranch=main', ...args], { cwd });
    await gitIn(root, 'init', '-q', '--bare', path.join(root, 'repo.git'));
    await gitIn(root, 'init', '-q', work);
    await fs.writeFile(path.join(work, 'hello'), 'hello from git out there\n');
    await gitIn(work, 'add', '.');
    await gitIn(work, 'commit', '-q', '-m', 'one');
    await gitIn(work, 'push', '-q', path.join(root, 'repo.git'), 'main');
    gitDaemon = execa('ip', ['netns', 'exec', ns, 'git', 'daemon', '--reuseaddr', '--export-all', '--listen=10.213.0.2', '--port=9418', `--base-path=${root}`, root], {
      reject: false,
      buffer: false,
    });
    // Ready when it answers: git ls-remote from the host reaches the namespace over the veth.
    for (let i = 0; ; i++) {
      if ((await execa('git', ['ls-remote', 'git://10.213.0.2/repo.git'], { reject: false })).exitCode === 0) break;
      if (i > 100 || gitDaemon.exitCode !== null) throw new Error('git daemon did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  afterAll(async () => {
    gitDaemon?.kill('SIGTERM');
    await gitDaemon;
  });

  test('ADD clones a repository out there, and refuses one on this host without network.host', async () => {
    const out = await strataOk(['build', await context(['FROM busybox', 'ADD git://10.213.0.2/repo.git#main /src', 'RUN cat /src/hello'])]);
    expect(out.stdout).toContain('hello from git out there');
    const connectionsBefore = loopbackConnections;

    for (const [source, said] of [
      [`git://127.0.0.1:${loopbackPort}/repo.git`, `127.0.0.1 is this host`],
      [`http://localhost:${loopbackPort}/repo.git`, 'localhost ('],
      [`git@localhost:repo.git`, 'localhost ('],
    ] as const) {
      const r = await strata(['build', await context(['FROM busybox', `ADD ${source} /x`])]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(`Step 2/2 : ADD ${source} /x (line 2)`);
      expect(r.stderr).toContain(said);
      expect(r.stderr).toContain('is this host (loopback, link-local or one of its own addresses); that needs the network.host entitlement');
    }
    // Neither the clone nor the cache look-up's ls-remote connected.
    expect(loopbackConnections).toBe(connectionsBefore);
  });

  test("a worker's STRATA_RUN_DENY_NETWORKS keeps ADD's downloads and clones from that network too", async () => {
    await withOwnWorker([], { STRATA_RUN_DENY_NETWORKS: '10.213.0.0/30' }, async (queue) => {
      for (const source of ['git://10.213.0.2/repo.git', 'http://10.213.0.2:18080/file']) {
        const r = await strata(['build', await context(['FROM busybox', `ADD ${source} /x`])], { env: { STRATA_TASK_QUEUE: queue } });
        expect(r.exitCode).toBe(1);
        expect(r.stderr).toContain(`Step 2/2 : ADD ${source} /x (line 2)`);
        expect(r.stderr).toContain('10.213.0.2 is in 10.213.0.0/30, a network this worker keeps builds from (STRATA_RUN_DENY_NETWORKS)');
      }
    });
  });

  test('--network=none has loopback only and reaches nothing', async () => {
    const ctx = await context(['FROM busybox', `RUN --network=none ${PROBE}; probe 10.213.0.2 18080; ls /sys/class/net; ip -o link | wc -l`]);
    const r = await strataOk(['build', ctx]);
    expect(r.stdout).toContain('blocked 10.213.0.2:18080');
    expect(r.stdout).toMatch(/^lo\n1$/m);
  });
});

test('RUN cannot make namespaces, mount, or enter the host', async () => {
  const attempts = ['unshare -U true', 'unshare -n true', 'unshare -m true', 'mount -t tmpfs tmpfs /mnt', 'nsenter -t 1 -n true', 'nsenter -t 1 -m true'];
  const ctx = await context([
    'FROM busybox',
    `RUN for c in ${attempts.map((a) => `"${a}"`).join(' ')}; do if $c 2>/dev/null; then echo "ALLOWED $c"; else echo "refused $c"; fi; done; ` +
      // /proc/keys (the kernel keyring) is masked; plain forks and the 32-bit personality still work
      'echo "keys:$(cat /proc/keys | wc -c)"; linux32 true && (true &) && echo "ordinary life works"',
  ]);
  const r = await strataOk(['build', ctx]);
  for (const a of attempts) expect(r.stdout).toContain(`refused ${a}`);
  expect(r.stdout).not.toMatch(/^ALLOWED/m);
  expect(r.stdout).toContain('keys:0');
  expect(r.stdout).toContain('ordinary life works');
});

test('RUN in its own network cannot open packet sockets (frames past its routes), yet ping works', async () => {
  // busybox's arping and udhcpc speak through AF_PACKET; ping through a raw IP socket, which is routed.
  const ctx = await context([
    'FROM busybox',
    'RUN if arping -c 1 -w 1 -I eth0 10.0.2.2 2>/tmp/err; then echo "PACKETS"; else cat /tmp/err; fi; ping -c 1 -W 2 127.0.0.1 >/dev/null && echo "ping works"',
  ]);
  const r = await strataOk(['build', ctx]);
  expect(r.stdout).not.toMatch(/^PACKETS$/m);
  expect(r.stdout).toMatch(/arping: .*Function not implemented/);
  expect(r.stdout).toContain('ping works');
});

// A `,` cannot stand in a --mount source (it separates the fields), and a backslash does not
// survive the Dockerfile's expansion; the unit test of mountOptionPath covers those.
test('a writable bind of a context dir named x:.. or a=b:c shows that directory and nothing of the host', async () => {
  for (const name of ['x:..', 'a=b:c']) {
    const ctx = await context(['FROM busybox', `RUN --mount=type=bind,source=${name},target=/m,rw ls -A /m && touch /m/written`], {
      [`${name}/only-this`]: 'inside\n',
      // what an unescaped `x:..` would name as its first lowerdir
      'x/in-x': 'not me\n',
    });
    const r = await strataOk(['build', ctx]);
    expect(r.stdout.split('\n')).toContain('only-this');
    expect(r.stdout).not.toContain('in-x');
    // the host's directories (the worker's cwd's parent) would show up beside it
    expect(r.stdout).not.toMatch(/^(etc|usr|proc|tmp|var|bin)$/m);
    // the copy was writable, and the context itself did not change
    expect(await fs.readdir(path.join(ctx, name))).toEqual(['only-this']);
  }
});

describe('what a step leaves behind is cleaned up inside its layer only', () => {
  test('/etc replaced by a symlink to a host directory: the host keeps its empty hosts file and resolv.conf dir', async () => {
    const host = await tempDir('strata-sentinel-');
    await fs.writeFile(path.join(host, 'hosts'), '');
    await fs.mkdir(path.join(host, 'resolv.conf'));
    // A base without /etc: runc makes /etc, /etc/hosts and /etc/resolv.conf in the upper dir
    // (overlayfs lets a step rename only such a directory), and the clean-up removes them.
    const ctx = await context(['FROM scratch', 'COPY --from=busybox /bin /bin', 'USER 0:0', `RUN mv /etc /etc.old && ln -s ${host} /etc`]);
    await strataOk(['build', ctx]);
    expect((await fs.stat(path.join(host, 'hosts'))).isFile()).toBe(true);
    expect((await fs.stat(path.join(host, 'resolv.conf'))).isDirectory()).toBe(true);
  });

  test("a mount target's parent replaced by a symlink to a host directory: the host keeps its empty dirs", async () => {
    const host = await tempDir('strata-sentinel-');
    await fs.mkdir(path.join(host, 'b', 'c'), { recursive: true });
    const ctx = await context(['FROM busybox', `RUN --mount=type=tmpfs,target=/a/b/c mv /a /a.old && ln -s ${host} /a`]);
    await strataOk(['build', ctx]);
    expect((await fs.stat(path.join(host, 'b', 'c'))).isDirectory()).toBe(true);
  });
});

describe('ADD of a URL and the network', () => {
  test('with --network none it fails naming the step', async () => {
    const url = `http://127.0.0.1:${loopbackPort}/file`;
    const ctx = await context(['FROM busybox', `ADD ${url} /file`]);
    const r = await strata(['build', '--network', 'none', '--allow', 'network.host', ctx]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`Step 2/2 : ADD ${url} /file (line 2)`);
    expect(r.stderr).toContain("the build's network is none");
  });

  test("of this host's loopback, by address or by name, it fails without network.host", async () => {
    const connectionsBefore = loopbackConnections;
    for (const host of ['127.0.0.1', 'localhost', '[::1]']) {
      const url = `http://${host}:${loopbackPort}/file`;
      const r = await strata(['build', await context(['FROM busybox', `ADD ${url} /file`])]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(`Step 2/2 : ADD ${url} /file (line 2)`);
      expect(r.stderr).toContain('is this host (loopback, link-local or one of its own addresses); that needs the network.host entitlement');
    }
    // No request reached it.
    expect(loopbackConnections).toBe(connectionsBefore);
  });
});
