// The `strata` command line: every command, its flags and help, wired to the function in
// client/commands/ that does it. Nothing else lives here.
import { Command, Option } from 'commander';
import { runAbort } from './commands/abort.js';
import { runAttach } from './commands/attach.js';
import { DEFAULT_RETRY_WINDOW, runBuild } from './commands/build.js';
import { runBuilderPrune } from './commands/builder/prune.js';
import { runBuildsDescribe } from './commands/builds/describe.js';
import { runBuildsLs } from './commands/builds/ls.js';
import { BUILD_STATUSES } from './commands/builds/status.js';
import { runImages } from './commands/images.js';
import { runImport } from './commands/import.js';
import { runLogs } from './commands/logs.js';
import { runPush } from './commands/push.js';
import { runRetry } from './commands/retry.js';
import { runSave } from './commands/save.js';
import { runScheduleCreate } from './commands/schedule/create.js';
import { runScheduleDescribe } from './commands/schedule/describe.js';
import { runScheduleLs } from './commands/schedule/ls.js';
import { runSchedulePause } from './commands/schedule/pause.js';
import { runScheduleRm } from './commands/schedule/rm.js';
import { runScheduleTrigger } from './commands/schedule/trigger.js';
import { runScheduleUnpause } from './commands/schedule/unpause.js';
import { runServerStart } from './commands/server/start.js';
import { runServerStatus } from './commands/server/status.js';
import { runServerStop } from './commands/server/stop.js';
import { runSystemDf } from './commands/system/df.js';
import { runWorker } from './commands/worker.js';
import { EXIT_WAITING, reportError } from './errors.js';
import { buildFlagOptions, collect } from './options.js';

/** An action whose number, when it returns one, is the exit status. */
function exits<A extends unknown[]>(fn: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args) => {
    const code = await fn(...args);
    if (typeof code === 'number') process.exitCode = code;
  };
}

function withOptions(cmd: Command, options: Option[]): Command {
  for (const o of options) cmd.addOption(o);
  return cmd;
}

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
  STRATA_CACHE_MAX     a worker trims the store to this size after each build, e.g. 10GB (least
                       recently used cache entries first; never what images or running builds hold)
  STRATA_INSECURE_REGISTRIES  host[:port],... pushed to over http (loopback registries always are)
  DOCKER_CONFIG        directory of the config.json whose "auths" hold registry credentials

A failed step keeps the build open for its retry window: strata build then exits with
status ${EXIT_WAITING} and prints how to go on (strata retry BUILD [--context DIR], strata abort BUILD).`,
    )
    .showHelpAfterError();

  withOptions(cli.command('build'), buildFlagOptions())
    .description('Build an image from a Dockerfile and a context directory')
    .argument('<context>', 'the build context directory')
    .option('--output <spec>', 'also save the image: type=docker,dest=FILE')
    .option('--secret <spec>', 'give RUN --mount=type=secret a secret: id=ID,src=FILE or id=ID,env=VAR (repeatable; the worker must share the store)', collect, [])
    .option('--retry-window <duration>', `how long a failed step waits for strata retry/abort, e.g. 30m; 0 fails at once (default ${DEFAULT_RETRY_WINDOW}, or STRATA_RETRY_WINDOW)`)
    .option('--detach', 'print the build ID and return; follow it later with strata attach')
    .action(exits(runBuild));

  cli
    .command('attach')
    .description(`Follow a build's progress and output, as strata build does (exit ${EXIT_WAITING}: it waits for a retry)`)
    .argument('<build>', 'the build ID')
    .action(exits(runAttach));

  cli
    .command('retry')
    .description('Run the failed step of a build that waits for a retry, then follow the build')
    .argument('<build>', 'the build ID')
    .option('--context <dir>', 'a fixed build context for the failed step and the steps after it (the Dockerfile stays)')
    .option('--detach', 'send the retry and return')
    .action(exits(runRetry));

  cli.command('abort').description("End a build that waits for a retry: it fails with its step's error").argument('<build>', 'the build ID').action(exits(runAbort));

  const builds = cli.command('builds').description("Builds as records, from Temporal's visibility");
  builds
    .command('ls')
    .description('List builds, newest first')
    .option('--tag <name:tag>', 'only builds that tag this image')
    .option('--status <status>', `only builds in this state: ${BUILD_STATUSES.join(', ')}`)
    .option('--schedule <id>', 'only builds this schedule started')
    .action(exits(runBuildsLs));
  builds.command('describe').description("Show a build's status, timings, steps and image ID").argument('<build>', 'the build ID').action(exits(runBuildsDescribe));

  cli
    .command('worker')
    .description('Run a worker: it executes builds from the task queue until stopped')
    .option('--deny-entitlement <entitlement>', 'refuse this entitlement to every build, even one that asks for it: network.host (repeatable)', collect, [])
    .action(exits(runWorker));

  const server = cli.command('server').description('Manage the embedded Temporal dev server');
  server.command('start').description('Start the embedded server in the background (a SQLite file under $STRATA_HOME)').action(exits(runServerStart));
  server.command('stop').description('Stop the embedded server').action(exits(runServerStop));
  server.command('status').description('Show which server strata uses and whether it answers').action(exits(runServerStatus));

  cli
    .command('logs')
    .description("Print a build's RUN output, kept whole in the store")
    .argument('<build>', 'the build ID (the workflow ID, e.g. build-0123abcd…)')
    .option('--step <n>', 'only this step', (v) => Number(v))
    .action(exits(runLogs));

  cli
    .command('import')
    .description('Create an image from a rootfs tarball (plain, gzip, bzip2, xz or zstd), like docker import')
    .argument('<file>', 'the tarball, or - for standard input')
    .argument('[name]', 'NAME[:TAG] for the image')
    .addOption(new Option('-c, --change <instruction>', 'apply a Dockerfile instruction to the config (repeatable)').argParser(collect).default([]))
    .action(exits(runImport));

  cli
    .command('save')
    .description('Save images to a tar archive that docker load and OCI tools read')
    .requiredOption('-o, --output <file>', 'write to this file')
    .argument('<images...>', 'NAME[:TAG] or image ID')
    .action(exits(runSave));

  cli
    .command('push')
    .description('Push an image from the store to a registry (skips the blobs it already has)')
    .argument('<image>', 'NAME[:TAG] in the store, e.g. localhost:5000/app:1, or an image ID with DEST')
    .argument('[dest]', "push under this REGISTRY/REPO:TAG instead of the image's own name")
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
    .action(exits(runPush));

  cli.command('images').description('List tagged images in the store').action(exits(runImages));

  const builder = cli.command('builder').description('Manage the build cache');
  builder
    .command('prune')
    .description('Remove build cache: cache entries, and the layers, contexts, blobs and logs nothing then refers to')
    .option('-a, --all', 'remove every cache entry, not only those whose layer no image uses')
    .option('--filter <filter>', 'only what was last used before DURATION ago: until=DURATION, e.g. until=24h (repeatable)', collect, [])
    .option('--keep-storage <size>', 'remove least recently used cache only until the build cache takes SIZE, e.g. 5GB')
    .option('-f, --force', 'do not ask for confirmation')
    .addHelpText(
      'after',
      `
Never removed: layers and blobs an image (tagged or not) uses, and what a running build holds
(its leases). Without -a, cache entries whose layer an image uses stay too, and so do entries of
steps that changed nothing (they hold no space). See \`strata system df\` for what is reclaimable.`,
    )
    .action(exits(runBuilderPrune));

  const system = cli.command('system').description('The store as a whole');
  system.command('df').description('Show how much space images and the build cache take, and what is reclaimable').action(exits(runSystemDf));

  const schedule = cli
    .command('schedule')
    .description('Rebuild images on a schedule (Temporal Schedules; runs need a `strata worker`)')
    .addHelpText(
      'after',
      `
SOURCE is one of:
  DIR                      packed now, as \`strata build\` sends it: every run builds these files
                           (--source-mode snapshot, the default for a directory)
  DIR --source-mode dir    read by the worker at each run (the worker's disk: same machine or
                           a shared path); -f is read at each run too
  URL#REF[:SUBDIR]         a git repository cloned at each run (https://…/x.git, git@host:x,
                           ssh://, git://; file:///…/x.git when the worker has
                           STRATA_ALLOW_FILE_GIT=1); -f is a path inside the checkout

--when changed skips a run when the context, the Dockerfile, the base images' digests and the
build flags are those of the schedule's last successful build (kept in the store under the
schedule's ID). A run that starts while the previous one still runs is skipped.

Examples:
  strata schedule create nightly --cron '0 3 * * *' -t app:nightly ./app
  strata schedule create poll --every 10m --when changed -t app:edge 'https://example.com/app.git#main'
  strata schedule trigger nightly --wait
  strata schedule describe nightly`,
    );
  withOptions(schedule.command('create'), buildFlagOptions())
    .description('Create a schedule that builds SOURCE')
    .argument('<id>', 'the schedule ID (letters, digits, _ . -)')
    .argument('<source>', 'a directory or a git URL (see `strata schedule --help`)')
    .option('--cron <expr>', "when to run, as cron (UTC): e.g. '0 3 * * *'")
    .option('--every <duration>', 'run at this interval: e.g. 30s, 10m, 1h')
    .option('--when <always|changed>', 'build at every run, or only when an input changed', 'always')
    .option('--source-mode <snapshot|dir|git>', 'how SOURCE is read (default: snapshot for a directory, git for a URL)')
    .option('--paused', 'create the schedule paused (`trigger` still runs it)')
    .action(exits(runScheduleCreate));
  schedule.command('ls').description('List the schedules').action(exits(runScheduleLs));
  schedule.command('describe').description("Show a schedule: its spec, source, state and its recent runs' results").argument('<id>').action(exits(runScheduleDescribe));
  schedule
    .command('trigger')
    .description('Run a schedule now (skipped while a run is still going)')
    .argument('<id>')
    .option('--wait', 'wait for the run and print its result (exit 1 if it failed)')
    .action(exits(runScheduleTrigger));
  schedule
    .command('pause')
    .description('Stop a schedule from running until unpaused')
    .argument('<id>')
    .option('--note <text>', 'why (shown by describe)')
    .action(exits(runSchedulePause));
  schedule.command('unpause').description('Let a paused schedule run again').argument('<id>').action(exits(runScheduleUnpause));
  schedule.command('rm').description('Delete a schedule (a running build finishes; images stay)').argument('<id>').action(exits(runScheduleRm));

  return cli;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (err) {
    process.exitCode = reportError(err);
  }
}

await main(process.argv);
