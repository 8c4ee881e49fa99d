// The `strata` command line.
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { importRootfs } from '../engine/archive/import.js';
import { saveImages } from '../engine/archive/save.js';
import { EngineError, RegistryError } from '../engine/errors.js';
import { normalizeReference } from '../engine/image/reference.js';
import { Store } from '../engine/store/store.js';
import { buildLogDir } from '../engine/store/logs.js';
import { ensureTemporal, serverStatus, startServer, stopServer, configuredTarget } from '../worker/temporal.js';
import { describeRights, workerRights } from '../worker/rights.js';
import { createWorker, taskQueue } from '../worker/worker.js';
import { DEFAULT_RETRY_WINDOW, EXIT_WAITING, runBuild, sourceDateEpoch, UsageError } from './build.js';
import { abortBuild, attachBuild, BUILD_STATUSES, describeBuild, listBuilds, retryBuild } from './builds.js';
import { formatSize } from './progress.js';
import { runPush } from './push.js';
import { scheduleCommand } from './schedule.js';

const collect = (value: string, previous: string[]) => [...previous, value];

function program(): Command {
  const cli = new Command('strata')
    .description('Build container images from Dockerfiles as durable Temporal workflows.')
    .addHelpText(
      'after',
      `
Environment:
  STRATA_HOME          the store (default ~/.local/share/strata)
  TEMPORAL_ADDRESS     use this Temporal server instead of the embedded one
  TEMPORAL_NAMESPACE   namespace to use (default "default")
  STRATA_TEMPORAL_PORT port of the embedded server (default 7233; Web UI on port+1000)
  STRATA_TASK_QUEUE    task queue of builds and workers (default "strata")
  TEMPORAL_CLI         the temporal binary that runs the embedded server
  SOURCE_DATE_EPOCH    clamp file times and set "created", for reproducible image IDs
  STRATA_RETRY_WINDOW  default of build --retry-window (default ${DEFAULT_RETRY_WINDOW}; 0 fails at once)
  STRATA_INSECURE_REGISTRIES  host[:port],... pushed to over http (loopback registries always are)
  DOCKER_CONFIG        directory of the config.json whose "auths" hold registry credentials
  TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY  client certificate and key (PEM) for mTLS to TEMPORAL_ADDRESS
  TEMPORAL_TLS_CA      CA (PEM) of the server's certificate; TEMPORAL_TLS_SERVER_NAME overrides its name
  STRATA_OUTPUT_DIR, STRATA_ALLOW_PUSH, STRATA_SOURCE_DIR, STRATA_ALLOW_FILE_GIT
                       what \`strata worker\` lets builds do beyond building (strata worker --help)

A failed step keeps the build open for its retry window: strata build then exits with
status ${EXIT_WAITING} and prints how to go on (strata retry BUILD [--context DIR], strata abort BUILD).`,
    )
    .showHelpAfterError();

  cli
    .command('build')
    .description('Build an image from a Dockerfile and a context directory')
    .argument('<context>', 'the build context directory')
    .option('-f, --file <file>', 'the Dockerfile, anywhere, or - for stdin (default: CONTEXT/Dockerfile)')
    .option('-t, --tag <name:tag>', 'name the image (repeatable)', collect, [])
    .option('--build-arg <key=value>', 'set a build-time variable (repeatable)', collect, [])
    .option('--target <stage>', 'build this stage and what it needs')
    .option('--output <spec>', 'also save the image: type=docker,dest=FILE (written by this client; with --detach by the worker, only under its STRATA_OUTPUT_DIR)')
    .option('--network <mode>', 'network for RUN steps: default (the host\'s), host or none')
    .option('--step-timeout <duration>', 'fail a RUN step that runs longer, e.g. 90s, 10m')
    .option('--secret <spec>', 'give RUN --mount=type=secret a secret: id=ID,src=FILE or id=ID,env=VAR (repeatable; the worker must share the store)', collect, [])
    .option('--retry-window <duration>', `how long a failed step waits for strata retry/abort, e.g. 30m; 0 fails at once (default ${DEFAULT_RETRY_WINDOW}, or STRATA_RETRY_WINDOW)`)
    .option('--detach', 'print the build ID and return; follow it later with strata attach')
    .option('--push', 'push each -t name to its registry after the build (e.g. -t localhost:5000/app:1), from this client; with --detach from a worker started with --allow-push')
    .action(async (context: string, opts) => {
      process.exitCode = await runBuild(await Store.open(), context, opts);
    });

  cli
    .command('attach')
    .description(`Follow a build's progress and output, as strata build does (exit ${EXIT_WAITING}: it waits for a retry)`)
    .argument('<build>', 'the build ID')
    .action(async (build: string) => {
      process.exitCode = await attachBuild(await Store.open(), build);
    });

  cli
    .command('retry')
    .description('Run the failed step of a build that waits for a retry, then follow the build')
    .argument('<build>', 'the build ID')
    .option('--context <dir>', 'a fixed build context for the failed step and the steps after it (the Dockerfile stays)')
    .option('--detach', 'send the retry and return')
    .action(async (build: string, opts: { context?: string; detach?: boolean }) => {
      process.exitCode = await retryBuild(await Store.open(), build, opts);
    });

  cli
    .command('abort')
    .description("End a build that waits for a retry: it fails with its step's error")
    .argument('<build>', 'the build ID')
    .action(async (build: string) => {
      process.exitCode = await abortBuild(await Store.open(), build);
    });

  const builds = cli.command('builds').description('Builds as records, from Temporal\'s visibility');
  builds
    .command('ls')
    .description('List builds, newest first')
    .option('--tag <name:tag>', 'only builds that tag this image')
    .option('--status <status>', `only builds in this state: ${BUILD_STATUSES.join(', ')}`)
    .option('--schedule <id>', 'only builds this schedule started')
    .action(async (opts: { tag?: string; status?: string; schedule?: string }) => {
      await listBuilds(await Store.open(), opts);
    });
  builds
    .command('describe')
    .description("Show a build's status, timings, steps and image ID")
    .argument('<build>', 'the build ID')
    .action(async (build: string) => {
      await describeBuild(await Store.open(), build);
    });

  cli
    .command('worker')
    .description('Run a worker: it executes builds from the task queue until stopped')
    .option('--allow-push', 'push builds that ask for it (schedules with --push, build --detach --push) with this worker\'s registry credentials (or STRATA_ALLOW_PUSH=1)')
    .addHelpText(
      'after',
      `
Anyone who can reach the Temporal server can start a build on this worker: what it may do
beyond building is off unless given (see docs/security.md):
  --allow-push, STRATA_ALLOW_PUSH=1  push with this worker's registry credentials
  STRATA_OUTPUT_DIR=DIR   write builds' --output files under DIR (only there; no symlinks on the way)
  STRATA_SOURCE_DIR=DIR   let schedules with --source-mode dir pack directories under DIR
  STRATA_ALLOW_FILE_GIT=1 let ADD and schedules clone file:// git repositories of this machine`,
    )
    .action(async (opts: { allowPush?: boolean }) => {
      const store = await Store.open();
      const target = await ensureTemporal(store.root, (m) => console.error(m));
      const rights = await workerRights(opts);
      const { worker, connection } = await createWorker({ target, store, rights });
      console.error(`strata worker: polling task queue "${taskQueue()}" on ${target.address} (store ${store.root}; ${describeRights(rights)})`);
      // Graceful first: running activities finish or are cancelled. A worker whose server is
      // gone would wait on its polls forever, so it leaves after a grace period, or at once
      // on a second signal.
      let stopping = false;
      const stop = () => {
        if (stopping) process.exit(130);
        stopping = true;
        worker.shutdown();
        setTimeout(() => process.exit(1), Number(process.env.STRATA_WORKER_SHUTDOWN_GRACE_MS || 20_000)).unref();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      await worker.run();
      await connection.close();
    });

  const server = cli.command('server').description('Manage the embedded Temporal dev server');
  server
    .command('start')
    .description('Start the embedded server in the background (a SQLite file under $STRATA_HOME)')
    .action(async () => {
      const store = await Store.open();
      if (!configuredTarget().embedded) throw new UsageError('server start: TEMPORAL_ADDRESS is set, so strata uses that server');
      const state = await startServer(store.root, (m) => console.error(m));
      console.log(`Temporal server running: 127.0.0.1:${state.port} (pid ${state.pid}), Web UI http://127.0.0.1:${state.uiPort}`);
    });
  server
    .command('stop')
    .description('Stop the embedded server')
    .action(async () => {
      const store = await Store.open();
      console.log((await stopServer(store.root)) ? 'Temporal server stopped' : 'Temporal server was not running');
    });
  server
    .command('status')
    .description('Show which server strata uses and whether it answers')
    .action(async () => {
      const store = await Store.open();
      const s = await serverStatus(store.root);
      console.log(`address: ${s.target.address} (${s.target.embedded ? 'embedded' : 'TEMPORAL_ADDRESS'})`);
      console.log(`reachable: ${s.reachable ? 'yes' : 'no'}`);
      if (s.state) console.log(`embedded server: pid ${s.state.pid}, Web UI http://127.0.0.1:${s.state.uiPort}, db ${s.state.db}`);
      else if (s.target.embedded) console.log('embedded server: not started by this store');
      process.exitCode = s.reachable ? 0 : 3;
    });

  cli
    .command('logs')
    .description("Print a build's RUN output, kept whole in the store")
    .argument('<build>', 'the build ID (the workflow ID, e.g. build-0123abcd…)')
    .option('--step <n>', 'only this step', (v) => Number(v))
    .action(async (build: string, opts: { step?: number }) => {
      const store = await Store.open();
      const dir = buildLogDir(store.root, build);
      const files = (await fs.readdir(dir).catch(() => [] as string[]))
        .map((f) => ({ f, n: Number(/^step-(\d+)\.log$/.exec(f)?.[1]) }))
        .filter((x) => !Number.isNaN(x.n) && (opts.step === undefined || x.n === opts.step))
        .sort((a, b) => a.n - b.n);
      if (files.length === 0) throw new UsageError(`logs: no output kept for ${build}${opts.step !== undefined ? ` step ${opts.step}` : ''} in ${store.root}`);
      for (const { f, n } of files) {
        if (opts.step === undefined) process.stdout.write(`--- step ${n} ---\n`);
        process.stdout.write(await fs.readFile(path.join(dir, f)));
      }
    });

  cli
    .command('import')
    .description('Create an image from a rootfs tarball (plain, gzip, bzip2, xz or zstd), like docker import')
    .argument('<file>', 'the tarball, or - for standard input')
    .argument('[name]', 'NAME[:TAG] for the image')
    .addOption(new Option('-c, --change <instruction>', 'apply a Dockerfile instruction to the config (repeatable)').argParser(collect).default([]))
    .action(async (file: string, name: string | undefined, opts: { change: string[] }) => {
      const store = await Store.open();
      const tags = name ? [normalizeReference(name)] : [];
      const src = file === '-' ? process.stdin : createReadStream(path.resolve(file));
      const { imageId } = await importRootfs(store, src, { tags, changes: opts.change, source: file, sourceDateEpoch: sourceDateEpoch() });
      console.log(imageId);
    });

  cli
    .command('save')
    .description('Save images to a tar archive that docker load and OCI tools read')
    .requiredOption('-o, --output <file>', 'write to this file')
    .argument('<images...>', 'NAME[:TAG] or image ID')
    .action(async (refs: string[], opts: { output: string }) => {
      const store = await Store.open();
      const items = [];
      for (const ref of refs) {
        const image = await store.getImage(ref);
        const isTag = !/^(sha256:)?[0-9a-f]{12,64}$/.test(ref);
        items.push({ image, tags: isTag ? [normalizeReference(ref)] : [] });
      }
      const { size } = await saveImages(store, items, path.resolve(opts.output));
      console.error(`Saved ${refs.join(', ')} to ${opts.output} (${formatSize(size)})`);
    });

  cli
    .command('push')
    .description('Push an image from the store to a registry (skips the blobs it already has)')
    .argument('<image>', 'NAME[:TAG] in the store, e.g. localhost:5000/app:1, or an image ID with DEST')
    .argument('[dest]', 'push under this REGISTRY/REPO:TAG instead of the image\'s own name')
    .addHelpText(
      'after',
      `
The registry is the name's first component when it has a dot or a port or is localhost
(else Docker Hub). Loopback registries (localhost, 127.0.0.0/8) are spoken to over http, as
docker does; STRATA_INSECURE_REGISTRIES=host:port,... adds others. Credentials come from
the "auths" of $DOCKER_CONFIG/config.json or ~/.docker/config.json (docker login writes
them): basic auth and bearer tokens. Layers are pushed as stored (uncompressed tars for
the layers strata built), so the pushed manifest digest is the local one.`,
    )
    .action(async (image: string, dest: string | undefined) => {
      await runPush(await Store.open(), image, dest);
    });

  cli
    .command('images')
    .description('List tagged images in the store')
    .action(async () => {
      const store = await Store.open();
      const rows = [['REPOSITORY', 'TAG', 'IMAGE ID', 'SIZE']];
      for (const t of await store.listTags()) {
        const img = await store.loadImage(t.manifest);
        const [repo, tag] = [t.name.slice(0, t.name.lastIndexOf(':')), t.name.slice(t.name.lastIndexOf(':') + 1)];
        rows.push([repo, tag, img.configDigest.slice(7, 19), formatSize(img.layers.reduce((n, l) => n + l.size, 0))]);
      }
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]! + 3)).join('').trimEnd());
    });

  cli.addCommand(scheduleCommand());

  return cli;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (err) {
    // A registry that is down or failing is not a bug of ours: its message says it all.
    if (err instanceof UsageError || err instanceof RegistryError || (err instanceof EngineError && err.userError)) {
      console.error(`error: ${err.message}`);
      process.exitCode = 1;
      return;
    }
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exitCode = 1;
  }
}

await main(process.argv);
