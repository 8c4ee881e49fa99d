// Ctrl-C on `strata build` while a RUN step runs: the workflow is cancelled, and the step's
// container, overlay mount and temp dirs are all gone once the CLI returns.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { execa } from 'execa';
import { commandLines, findContainer, mountPoints, runcContainers, until } from '../helpers/host.js';
import { STRATA_BIN, strataOk } from '../helpers/cli.js';

test('Ctrl-C during a RUN cancels the build and leaves no container, mount or temp dir behind', async () => {
  const marker = `cancel-me-${randomBytes(4).toString('hex')}`;
  const ctx = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-cancel-'));
  try {
    await fs.writeFile(path.join(ctx, 'Dockerfile'), `FROM busybox\nRUN echo started ${marker} && sleep 60 && echo finished ${marker}\nRUN echo never\n`);
    const cli = execa('node', [STRATA_BIN, 'build', ctx], { reject: false });
    let stdout = '';
    cli.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));

    await until('the step to print', async () => (stdout.includes(`started ${marker}`) ? true : undefined));
    const container = await until('the runc container', () => findContainer(marker));
    const workflowId = /Build ID: (\S+)/.exec(stdout)![1]!;
    // What must disappear is there now, so the checks below can fail.
    expect(await mountPoints()).toContain(container.rootfs);
    await expect(fs.stat(container.bundle)).resolves.toBeDefined();

    cli.kill('SIGINT');
    const r = await cli;
    expect(r.exitCode).toBe(130);
    expect(r.stderr).toContain('Build cancelled');
    expect(stdout).not.toContain('never');
    // The container was killed, not waited for: its whole log stops at the first line.
    const log = await strataOk(['logs', workflowId, '--step', '2']);
    expect(log.stdout).toContain(`started ${marker}`);
    expect(log.stdout).not.toContain(`finished ${marker}`);

    expect((await runcContainers()).map((c) => c.id)).not.toContain(container.id);
    expect(await mountPoints()).not.toContain(container.rootfs);
    // The step's staging dir (bundle, upper, work, merged) is removed.
    await expect(fs.stat(path.dirname(container.bundle))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await commandLines()).not.toEqual(expect.arrayContaining([expect.stringContaining(marker)]));
    // Nor its network: slirp4netns and the namespace's mount went with it.
    expect(await commandLines()).not.toEqual(expect.arrayContaining([expect.stringContaining(path.dirname(container.bundle))]));
    expect((await mountPoints()).filter((m) => m.startsWith(path.dirname(container.bundle)))).toEqual([]);

    const connection = await Connection.connect({ address: `127.0.0.1:${process.env.STRATA_TEMPORAL_PORT}` });
    try {
      const d = await new Client({ connection }).workflow.getHandle(workflowId).describe();
      expect(d.status.name).toBe('CANCELLED');
    } finally {
      await connection.close();
    }
  } finally {
    await fs.rm(ctx, { recursive: true, force: true });
  }
});
