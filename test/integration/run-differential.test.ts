// RUN against docker's classic builder (DOCKER_BUILDKIT=0): the same Dockerfile, with steps
// that create, modify, chmod, chown, link, rename and delete files and directories, must
// give a container the same filesystem, entry by entry.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { classicBuild, DIFF_BASE, filesystemListing, removeClassicLeftovers, strataBuildIntoDocker } from '../helpers/differential.js';
import { dockerRmi, dockerRun } from '../helpers/docker.js';

const images: string[] = [];
const dirs: string[] = [];
afterAll(async () => {
  if (images.length) await dockerRmi(...images);
  await removeClassicLeftovers();
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

// Every change an overlay upperdir can carry: new, appended, truncated, chmod'ed (setuid,
// sticky), chown'ed files and dirs; hard and symbolic links (dangling too, with their own
// owner); a fifo; files of the base deleted and changed; a directory renamed (a copy with
// redirect_dir off), removed and recreated (opaque), a file replaced by a dir and back; a
// file created and deleted within one step; a step as another user; WORKDIR then a relative
// path; and a step that changes nothing.
const DOCKERFILE = `FROM ${DIFF_BASE}
RUN mkdir -p /app/dir/nested /app/empty /app/gone/deep /app/swap && \\
    echo alpha > /app/file && echo beta > /app/dir/nested/f && echo keep > /app/gone/deep/x && \\
    ln -s file /app/sym && ln -s /nowhere /app/dangling && ln /app/file /app/hard && \\
    mkfifo /app/fifo && chmod 4755 /app/dir/nested/f && chmod 1777 /app/empty && \\
    chown 1:1 /app/dir && touch /app/swap/inner && echo file > /app/was-file
RUN echo gamma >> /app/file && chmod 0700 /app/dir && rm -rf /app/gone && rm /bin/vi && \\
    mv /app/dir/nested /app/moved && rm /app/sym && mkdir /app/sym && \\
    chmod 0640 /etc/passwd && echo extra >> /etc/group && chown -h 2:2 /app/dangling
RUN rm -rf /app/empty && mkdir /app/empty && touch /app/empty/new && rm /app/fifo && \\
    rm -rf /app/swap && echo now-a-file > /app/swap && rm /app/was-file && mkdir /app/was-file && \\
    touch /tmp/transient && rm /tmp/transient && : > /app/file && chmod 2750 /app/moved
USER daemon
RUN echo from-daemon > /tmp/owned && mkdir /tmp/ddir
USER root
WORKDIR /app/work
RUN echo relative > here && ln ../moved/f here-link
RUN true
CMD ["sh", "-c", "cat /tmp/owned /app/work/here && stat -c '%h %u %a' /app/work/here-link /app/file"]
`;

test('a Dockerfile that creates, modifies, chmods and deletes over several RUNs gives the filesystem docker gives', async () => {
  const ctx = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-diff-run-'));
  dirs.push(ctx);
  await fs.writeFile(path.join(ctx, 'Dockerfile'), DOCKERFILE);

  const ours = await strataBuildIntoDocker(ctx);
  images.push(ours);
  const theirs = await classicBuild(ctx);
  images.push(theirs);

  const [mine, docker] = await Promise.all([filesystemListing(ours), filesystemListing(theirs)]);
  // Guard against comparing two empty or trivial listings.
  expect(docker).toContain('/app/dangling symlink 0777 2:2 -> /nowhere');
  expect(docker.length).toBeGreaterThan(300);
  expect(mine).toEqual(docker);

  const out = await dockerRun(ours);
  expect(out).toBe(await dockerRun(theirs));
  expect(out.split('\n').slice(0, 2)).toEqual(['from-daemon', 'relative']);
});
