// Differential checks against docker's classic builder: the same Dockerfile built by strata
// (saved, loaded into docker) and by dockerd with DOCKER_BUILDKIT=0, compared as a user
// would — the files a container sees, and the image config.
import { createHash } from 'node:crypto';
import { execa } from 'execa';
import tarStream from 'tar-stream';
import { strataOk } from './cli.js';
import { docker, dockerLoad, dockerRmi, uniqueName } from './docker.js';

/**
 * One line per path of the container filesystem docker gives the image: path, type, mode,
 * owner, link target and content digest. Read from `docker export` of a created (never
 * started) container, so images without a shell can be listed too. Times are left out: the
 * two builders ran at different moments.
 */
export async function filesystemListing(image: string): Promise<string[]> {
  const id = (await docker(['create', image, '/no-such-command'])).trim();
  try {
    const exported = execa('docker', ['export', id], { buffer: false, encoding: 'buffer' });
    const extract = tarStream.extract();
    const rows: string[] = [];
    const done = (async () => {
      for await (const entry of extract) {
        const h = entry.header;
        const hash = createHash('sha256');
        for await (const chunk of entry) hash.update(chunk as Buffer);
        const name = `/${h.name.replace(/^\.?\//, '').replace(/\/$/, '')}`;
        const mode = ((h.mode ?? 0) & 0o7777).toString(8).padStart(4, '0');
        let row = `${name} ${h.type} ${mode} ${h.uid}:${h.gid}`;
        if (h.type === 'symlink' || h.type === 'link') row += ` -> ${h.linkname}`;
        if (h.type === 'file') row += ` sha256:${hash.digest('hex')}`;
        if (h.type === 'character-device' || h.type === 'block-device') row += ` ${h.devmajor},${h.devminor}`;
        rows.push(row);
      }
    })();
    exported.stdout!.pipe(extract);
    await Promise.all([exported, done]);
    return rows.sort();
  } finally {
    await execa('docker', ['rm', '-f', id], { reject: false });
  }
}

/** docker's classic builder on a context dir; returns the image ID. */
export async function classicBuild(context: string, args: string[] = []): Promise<string> {
  const tag = uniqueName('strata-classic');
  const r = await execa('docker', ['build', '-q', '-t', tag, ...args, context], {
    env: { DOCKER_BUILDKIT: '0' },
    reject: false,
  });
  if (r.exitCode !== 0) throw new Error(`classic docker build failed (${r.exitCode}):\n${r.stderr}`);
  return tag;
}

/** strata build → save → docker load; returns the tag docker knows it by. */
export async function strataBuildIntoDocker(context: string, args: string[] = []): Promise<string> {
  const tag = uniqueName('strata-built');
  const out = `${context}.strata-out.tar`;
  try {
    await strataOk(['build', '-t', tag, ...args, '--output', `type=docker,dest=${out}`, context]);
    await dockerLoad(out);
  } finally {
    await execa('rm', ['-f', out]);
  }
  return tag;
}

/**
 * The busybox rootfs the test environment imported into strata as `busybox:latest`, imported
 * into docker under a unique name, so both builders start from the same bytes without
 * touching a `busybox` image the machine's docker may have.
 */
export async function dockerBusyboxBase(): Promise<{ name: string; remove(): Promise<void> }> {
  const tar = process.env.STRATA_TEST_BUSYBOX_TAR;
  if (!tar) throw new Error('STRATA_TEST_BUSYBOX_TAR is not set (run through the jest global set-up)');
  const name = `${uniqueName('strata-base')}:latest`;
  await docker(['import', '--change', 'CMD ["sh"]', tar, name]);
  return { name, remove: () => dockerRmi(name) };
}
