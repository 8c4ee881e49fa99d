// Issue 2's walking skeleton, end to end: strata build (a Temporal workflow on the dev
// server) → saved tar → docker load → docker run/inspect/history.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { strata, strataOk } from '../helpers/cli.js';
import { activityAttempts, workflowsOnQueue } from '../helpers/temporal.js';
import { dockerHistory, dockerInspect, dockerLoad, dockerRmi, dockerRun, uniqueName } from '../helpers/docker.js';

async function makeContext(files: Record<string, string>): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-ctx-'));
  for (const [name, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await fs.writeFile(path.join(dir, name), content);
  }
  return dir;
}

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
});

function track(dir: string, ...images: string[]) {
  cleanups.push(async () => {
    await fs.rm(dir, { recursive: true, force: true });
    if (images.length) await dockerRmi(...images);
  });
}

describe('strata build → save → docker', () => {
  test('FROM busybox with COPY, ENV, WORKDIR, LABEL, EXPOSE, CMD runs under docker as written', async () => {
    const name = uniqueName();
    const ctx = await makeContext({
      Dockerfile: [
        'FROM busybox',
        'LABEL org.example.team="build tools" version=1',
        'ENV GREETING="hello from strata" TARGET=world',
        'WORKDIR /srv/app',
        'COPY greet.sh ./',
        'COPY data/ /srv/data/',
        'EXPOSE 8080 53/udp',
        'CMD ["sh", "/srv/app/greet.sh"]',
        '',
      ].join('\n'),
      'greet.sh': 'echo "$GREETING, $TARGET"; echo "cwd=$(pwd)"; cat /srv/data/msg.txt; ls /srv/data/nested\n',
      'data/msg.txt': 'data file\n',
      'data/nested/inner.txt': 'inner\n',
    });
    const tar = path.join(ctx, 'out.tar');
    track(ctx, `${name}:latest`);

    const build = await strataOk(['build', '-t', name, '--output', `type=docker,dest=${tar}`, ctx]);
    expect(build.stdout).toContain('Step 1/8 : FROM busybox');
    expect(build.stdout).toContain('Step 5/8 : COPY greet.sh ./');
    expect(build.stdout).toMatch(/Successfully built [0-9a-f]{12}/);
    expect(build.stdout).toContain(`Successfully tagged ${name}:latest`);

    expect(await dockerLoad(tar)).toContain(`${name}:latest`);
    expect(await dockerRun(name)).toBe('hello from strata, world\ncwd=/srv/app\ndata file\ninner.txt');

    const info = await dockerInspect(name);
    expect(info.Config.Cmd).toEqual(['sh', '/srv/app/greet.sh']);
    expect(info.Config.Env).toEqual(expect.arrayContaining(['GREETING=hello from strata', 'TARGET=world']));
    expect(info.Config.WorkingDir).toBe('/srv/app');
    expect(info.Config.Labels).toEqual({ 'org.example.team': 'build tools', version: '1' });
    expect(Object.keys(info.Config.ExposedPorts ?? {}).sort()).toEqual(['53/udp', '8080/tcp']);
    // The image ID docker computes is the one strata printed.
    expect(info.Id.slice(7, 19)).toBe(/Successfully built ([0-9a-f]{12})/.exec(build.stdout)![1]);

    // One history row per instruction after FROM, on top of the base's one row.
    const history = await dockerHistory(name);
    expect(history).toHaveLength(1 + 7);
    expect(history[0]!.createdBy).toBe('CMD ["sh" "/srv/app/greet.sh"]'); // Go's %q of a list, as docker writes it
    expect(history[3]!.createdBy).toBe('COPY greet.sh ./');
    expect(history[4]!.createdBy).toBe('WORKDIR /srv/app');
    expect(history[5]!.createdBy).toBe('ENV GREETING=hello from strata TARGET=world');
  });

  test('FROM scratch with a static busybox and a CMD runs under docker', async () => {
    const name = uniqueName();
    const ctx = await makeContext({
      Dockerfile: 'FROM scratch\nCOPY busybox /bin/busybox\nCMD ["/bin/busybox", "echo", "from scratch"]\n',
    });
    await fs.copyFile('/bin/busybox', path.join(ctx, 'busybox'));
    await fs.chmod(path.join(ctx, 'busybox'), 0o755);
    const tar = path.join(ctx, 'out.tar');
    track(ctx, `${name}:latest`);
    await strataOk(['build', '-t', name, '--output', `type=docker,dest=${tar}`, ctx]);
    await dockerLoad(tar);
    expect(await dockerRun(name)).toBe('from scratch');
    const layers = (await dockerInspect(name)).RootFS.Layers ?? [];
    expect(layers).toHaveLength(1);
  });

  test('a Dockerfile syntax error fails the build at once, naming the line', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nENV A=1\nCOPPY a b\n', a: 'x' });
    track(ctx);
    const r = await strata(['build', ctx]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/Dockerfile:3: unknown instruction: COPPY/i);
    expect(r.stdout).not.toContain('Step 1/');
  });

  test('a syntax error and an unknown instruction are reported by the client: no workflow starts', async () => {
    // A queue of its own: no worker polls it, and what was started on it can be listed.
    const queue = `early-errors-${process.pid}-${Date.now()}`;
    const cases: [string, RegExp][] = [
      ['FROM busybox\nRUN ["sh", 1]\n', /^error: Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only$/m],
      ['FROM busybox\nENV A=1\nRUNN echo hi\n', /^error: Dockerfile:3: unknown instruction: RUNN \(did you mean RUN\?\)$/m],
    ];
    for (const [dockerfile, message] of cases) {
      const ctx = await makeContext({ Dockerfile: dockerfile });
      track(ctx);
      const r = await strata(['build', ctx], { env: { STRATA_TASK_QUEUE: queue } });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).not.toContain('Build ID');
    }
    expect(await workflowsOnQueue(queue)).toEqual([]);
  });

  test('a missing COPY source fails naming the step and line, without retries', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nCOPY nothere /x\n' });
    track(ctx);
    const r = await strata(['build', ctx]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('Step 2/2 : COPY nothere /x (line 2): COPY failed: file not found in build context or excluded by .dockerignore: nothere');
    // The server's history: the COPY activity started once, on attempt 1 (a retried one
    // would show its last attempt number).
    const workflowId = /workflows\/(build-[0-9a-f]+)/.exec(r.stderr)![1]!;
    const copies = (await activityAttempts(workflowId)).filter((a) => a.type === 'copyStep');
    expect(copies).toEqual([{ type: 'copyStep', attempt: 1 }]);
  });

  test('COPY --from a later stage fails before any step runs, naming the file and line', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox AS first\nRUN touch /ran\nCOPY --from=second /x /x\nFROM busybox AS second\n' });
    track(ctx);
    const r = await strata(['build', '--target', 'first', ctx]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('Dockerfile:3: COPY --from=second: stage second is defined later (line 4)');
    expect(r.stdout).not.toContain('Step 1/');
  });

  test('a .dockerignore’d file is absent from the image; an exception is kept', async () => {
    const name = uniqueName();
    const ctx = await makeContext({
      Dockerfile: 'FROM busybox\nCOPY . /ctx/\nCMD ["find", "/ctx", "-type", "f"]\n',
      '.dockerignore': 'secret.txt\nlogs\n*.tmp\n!keep.tmp\n',
      'secret.txt': 'password\n',
      'app.txt': 'app\n',
      'logs/today.log': 'log\n',
      'scratch.tmp': 'tmp\n',
      'keep.tmp': 'keep\n',
    });
    const tar = path.join(ctx, 'out.tar');
    track(ctx, `${name}:latest`);
    await strataOk(['build', '-t', name, '--output', `type=docker,dest=${tar}`, ctx]);
    await dockerLoad(tar);
    const files = (await dockerRun(name)).split('\n').sort();
    expect(files).toEqual(['/ctx/.dockerignore', '/ctx/Dockerfile', '/ctx/app.txt', '/ctx/keep.tmp']);
  });

  test('strata save writes a tar that docker and skopeo both read', async () => {
    const name = uniqueName();
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nCOPY f /f\nCMD ["cat", "/f"]\n', f: 'saved\n' });
    track(ctx, `${name}:v1`);
    await strataOk(['build', '-t', `${name}:v1`, ctx]);
    const tar = path.join(ctx, 'saved.tar');
    await strataOk(['save', '-o', tar, `${name}:v1`]);
    const { execa } = await import('execa');
    const sk = await execa('skopeo', ['inspect', `oci-archive:${tar}:v1`]);
    expect(JSON.parse(sk.stdout).Layers).toHaveLength(2);
    await dockerLoad(tar);
    expect(await dockerRun(`${name}:v1`)).toBe('saved');
  });
});

describe('where the Dockerfile comes from', () => {
  test('-f - reads it from stdin; -f may point outside the context, with its NAME.dockerignore', async () => {
    const ctx = await makeContext({ 'kept.txt': 'kept\n', 'secret.txt': 'secret\n' });
    const elsewhere = await makeContext({
      'app.Dockerfile': 'FROM busybox\nCOPY . /ctx/\nCMD ["ls", "/ctx"]\n',
      'app.Dockerfile.dockerignore': 'secret.txt\n',
    });
    const a = uniqueName();
    const b = uniqueName();
    track(ctx, a, b);
    track(elsewhere);
    const tarA = path.join(elsewhere, 'a.tar');
    await strataOk(['build', '-f', '-', '-t', a, '--output', `type=docker,dest=${tarA}`, ctx], { input: 'FROM busybox\nCOPY kept.txt /\nCMD ["cat", "/kept.txt"]\n' });
    await dockerLoad(tarA);
    expect(await dockerRun(a)).toBe('kept');

    const tarB = path.join(elsewhere, 'b.tar');
    await strataOk(['build', '-f', path.join(elsewhere, 'app.Dockerfile'), '-t', b, '--output', `type=docker,dest=${tarB}`, ctx]);
    await dockerLoad(tarB);
    expect((await dockerRun(b)).split('\n')).toEqual(['kept.txt']);
  });
});
