// The `strata` command line: every command, its flags and help, wired to the function in
// client/commands/ that does it. Nothing else lives here. A command's module is imported only
// when that command runs (Temporal's client alone takes half a second to load), so `--help`
// and the store's commands start fast.
import { Command, CommanderError, Option } from 'commander';
import type { Store } from '../engine/store/store.js';
import { BUILD_STATUSES } from './commands/builds/status.js';
import type { ImagesOptions } from './commands/images.js';
import type { PruneCliOptions } from './commands/rmi.js';
import type { SaveCliOptions } from './commands/save.js';
import { EXIT_USAGE, EXIT_WAITING, reportError } from './errors.js';
import { DEFAULT_RETRY_WINDOW, buildFlagOptions, cacheSpecArg, collect } from './options.js';
import { phase } from './timing.js';
import { versionLine, versionReport } from './version.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- commander hands actions untyped arguments
type Action = (...args: any[]) => Promise<number | void>;

/** The action `name` of the module `load` imports, loaded when the command runs. */
function lazy<M extends Record<K, Action>, K extends string>(load: () => Promise<M>, name: K): (...args: Parameters<M[K]>) => Promise<number | void> {
  return async (...args) => {
    const mod = await load();
    phase('command loaded');
    return mod[name](...args);
  };
}

/** An action whose number, when it returns one, is the exit status. */
function exits<A extends unknown[]>(fn: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args) => {
    const code = await fn(...args);
    if (typeof code === 'number') process.exitCode = code;
  };
}

/** An action that works on the store: opened once the arguments are parsed. */
function withStore<A extends unknown[]>(fn: (store: Store, ...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return exits(async (...args: A) => fn(await (await import('../engine/store/store.js')).Store.open(), ...args));
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
  STRATA_TIMING=1      print how long each phase of a command took (ms, on stderr)
  STRATA_RETRY_WINDOW  default of build --retry-window (default ${DEFAULT_RETRY_WINDOW}; 0 fails at once)
  STRATA_CACHE_MAX     a worker trims the store to this size after each build, e.g. 10GB (least
                       recently used cache entries first; never what images or running builds hold)
  STRATA_INSECURE_REGISTRIES  host[:port],... spoken to over http (loopback registries always are)
  STRATA_REGISTRY_MIRRORS     host[:port] or URL,... tried before Docker Hub for pulls
  STRATA_REMOTE        REGISTRY/REPO: workers and clients on different stores (machines) share
                       contexts, layers, images and the build cache through it (docs/store.md)
  DOCKER_CONFIG        directory of the config.json with registry credentials (auths, credsStore,
                       credHelpers), as docker login writes it
  TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY  client certificate and key (PEM) for mTLS to TEMPORAL_ADDRESS
  TEMPORAL_TLS_CA      CA (PEM) of the server's certificate; TEMPORAL_TLS_SERVER_NAME overrides its name
  STRATA_OUTPUT_DIR, STRATA_ALLOW_PUSH, STRATA_SOURCE_DIR, STRATA_ALLOW_FILE_GIT, STRATA_RUN_DENY_NETWORKS
                       what \`strata worker\` lets builds do beyond building (strata worker --help)

A failed step keeps the build open for its retry window: strata build then exits with
status ${EXIT_WAITING} and prints how to go on (strata retry BUILD [--context DIR], strata abort BUILD).
A mistake in how strata is called (an unknown flag, a missing argument) exits with status ${EXIT_USAGE}.`,
    )
    .version(versionLine(), '-v, --version', 'print the version and exit')
    // strata's own options come before the command: `system df -v` is df's -v.
    .enablePositionalOptions();

  cli
    .command('version')
    .description("Show strata's version and the versions of what it runs with")
    .action(() => console.log(versionReport().join('\n')));

  withOptions(cli.command('build'), buildFlagOptions())
    .description('Build an image from a Dockerfile and a context directory')
    .argument('<context>', 'the build context directory')
    .option('--output <spec>', 'also save the image: type=docker,dest=FILE (written by this client; with --detach by the worker, only under its STRATA_OUTPUT_DIR)')
    .option('--secret <spec>', 'give RUN --mount=type=secret a secret: id=ID,src=FILE or id=ID,env=VAR (repeatable; the worker must share the store)', collect, [])
    .option('--retry-window <duration>', `how long a failed step waits for strata retry/abort, e.g. 30m; 0 fails at once (default ${DEFAULT_RETRY_WINDOW}, or STRATA_RETRY_WINDOW)`)
    .option('--detach', 'print the build ID and return; follow it later with strata attach')
    .option(
      '--progress <mode>',
      'how to show the build: auto (the default: tty on a terminal, else plain), plain (Step rows, RUN output, ---> IDs and times), tty (a live view), quiet',
    )
    .option('-q, --quiet', 'print only the image ID (sha256:…) on success; errors still go to stderr')
    .option('--iidfile <file>', 'write the image ID (sha256:…) to this file')
    .option(
      '--cache-to <spec>',
      'after the build, export its cache entries and their layers to a registry repository for --cache-from on other machines: type=registry,ref=REGISTRY/REPO[,mode=max] (mode=max is taken as min: strata exports every filesystem step of every stage it built anyway); pushed by this client with your credentials (by strata retry or attach when the build waited for a retry)',
      cacheSpecArg('--cache-to'),
    )
    .addHelpText(
      'after',
      `
Output (--progress=plain, as docker's classic builder prints it): each step's row, RUN's
output as it comes, then " ---> ID (TIME)": the ID of the image after the step (strata save,
strata inspect, strata history and COPY --from take it; strata images -a lists them) and how
long the step took.`,
    )
    .action(exits(lazy(() => import('./commands/build.js'), 'runBuild')));

  cli
    .command('attach')
    .description(`Follow a build's progress and output, as strata build does (exit ${EXIT_WAITING}: it waits for a retry)`)
    .argument('<build>', 'the build ID')
    .option('--progress <mode>', 'auto (the default), plain, tty or quiet, as strata build shows it')
    .action(exits(lazy(() => import('./commands/attach.js'), 'runAttach')));

  cli
    .command('retry')
    .description('Run the failed step of a build that waits for a retry, then follow the build')
    .argument('<build>', 'the build ID')
    .option('--context <dir>', 'a fixed build context for the failed step and the steps after it (the Dockerfile stays)')
    .option('--detach', 'send the retry and return')
    .action(exits(lazy(() => import('./commands/retry.js'), 'runRetry')));

  cli
    .command('abort')
    .description("End a build that waits for a retry: it fails with its step's error")
    .argument('<build>', 'the build ID')
    .action(exits(lazy(() => import('./commands/abort.js'), 'runAbort')));

  const builds = cli.command('builds').description("Builds as records, from Temporal's visibility");
  builds
    .command('ls')
    .description("List this store's builds, newest first")
    .option('-a, --all', 'builds of every store on the server (and those of clients before strata recorded stores)')
    .option('--tag <name:tag>', 'only builds that tag this image')
    .option('--status <status>', `only builds in this state: ${BUILD_STATUSES.join(', ')}`)
    .option('--schedule <id>', 'only builds this schedule started')
    .action(exits(lazy(() => import('./commands/builds/ls.js'), 'runBuildsLs')));
  builds
    .command('describe')
    .description("Show a build's status, timings, steps and image ID")
    .argument('<build>', 'the build ID')
    .action(exits(lazy(() => import('./commands/builds/describe.js'), 'runBuildsDescribe')));

  const worker = cli
    .command('worker')
    .description('Run a worker in this terminal: it executes builds from the task queue until stopped (start|stop|status: the background worker)')
    .option('--deny-entitlement <entitlement>', 'refuse this entitlement to every build, even one that asks for it: network.host (repeatable)', collect, [])
    .option('--allow-push', "push builds that ask for it (schedules with --push, build --detach --push) with this worker's registry credentials (or STRATA_ALLOW_PUSH=1)")
    .addOption(new Option('--background', "run as the store's background worker (how `worker start` runs it)").hideHelp())
    .addHelpText(
      'after',
      `
Anyone who can reach the Temporal server can start a build on this worker: what it may do
beyond building is off unless given (see docs/security.md):
  --allow-push, STRATA_ALLOW_PUSH=1  push with this worker's registry credentials
  STRATA_OUTPUT_DIR=DIR   write builds' --output files under DIR (only there; no symlinks on the way)
  STRATA_SOURCE_DIR=DIR   let schedules with --source-mode dir pack directories under DIR
  STRATA_ALLOW_FILE_GIT=1 let ADD and schedules clone file:// git repositories of this machine
  STRATA_RUN_DENY_NETWORKS=CIDR,...  networks RUN steps and ADD must not reach (e.g. a compose network)

STRATA_CACHE_MAX=SIZE (e.g. 10GB): after each build, trim the store to SIZE, least recently
used build cache first (never what images or running builds hold; strata builder prune).

STRATA_REMOTE=REGISTRY/REPO: this worker shares no disk with the others: what a build needs
and this store lacks comes from that registry repository, and what it makes goes there
(layers, cache entries, images; docs/store.md). Give the CLI the same STRATA_REMOTE.

Besides STRATA_TASK_QUEUE, a worker polls a queue of its own (QUEUE-<random id>, in its first
line): a stage's next step goes there while the worker lives, so it finds the stage's layers
at hand; when it is gone, the step goes back to the shared queue.

When no worker serves the task queue, \`strata build\` (and retry, abort, attach) starts the
store's background worker: detached, logging to $STRATA_HOME/worker.log, reused by every later
build until \`strata worker stop\` (or \`strata server stop\`) ends it. It keeps the environment
of the command that started it (registry mirrors, credentials, STRATA_RUN_DENY_NETWORKS) but
has none of the rights above: run \`strata worker\` yourself to give them. A background worker
of another build of strata (an upgrade, \`npm run build\`) is stopped and started anew.`,
    )
    .action(exits(lazy(() => import('./commands/worker.js'), 'runWorker')));
  worker
    .command('start')
    .description("Start the store's background worker for this task queue (unless a worker of this machine serves it)")
    .action(exits(lazy(() => import('./commands/worker/start.js'), 'runWorkerStart')));
  worker
    .command('stop')
    .description("Stop the store's background worker for this task queue (running steps go to another worker)")
    .option('--all', 'every background worker of the store, whatever its task queue')
    .action(exits(lazy(() => import('./commands/worker/stop.js'), 'runWorkerStop')));
  worker
    .command('status')
    .description("List this machine's workers on the store, with their memory (exit 3: none serves this task queue)")
    .action(exits(lazy(() => import('./commands/worker/status.js'), 'runWorkerStatus')));

  const server = cli.command('server').description('Manage the embedded Temporal dev server');
  server
    .command('start')
    .description('Start the embedded server in the background (a SQLite file under $STRATA_HOME)')
    .action(exits(lazy(() => import('./commands/server/start.js'), 'runServerStart')));
  server
    .command('stop')
    .description("Stop the embedded server (and first the store's background workers that poll it)")
    .action(exits(lazy(() => import('./commands/server/stop.js'), 'runServerStop')));
  server
    .command('status')
    .description('Show which server strata uses and whether it answers')
    .action(exits(lazy(() => import('./commands/server/status.js'), 'runServerStatus')));

  cli
    .command('logs')
    .description("Print a build's RUN output, kept whole in the store")
    .argument('<build>', 'the build ID (the workflow ID, e.g. build-0123abcd…)')
    .option('--step <n>', 'only this step', (v) => Number(v))
    .action(exits(lazy(() => import('./commands/logs.js'), 'runLogs')));

  cli
    .command('import')
    .description('Create an image from a rootfs tarball (plain, gzip, bzip2, xz or zstd), like docker import (an image archive from docker save goes in with strata load)')
    .argument('<file>', 'the tarball, or - for standard input')
    .argument('[name]', 'NAME[:TAG] for the image')
    .addOption(new Option('-c, --change <instruction>', 'apply a Dockerfile instruction to the config (repeatable)').argParser(collect).default([]))
    .option('--platform <os/arch[/variant]>', "the platform the image is for (default: the host's)")
    .action(exits(lazy(() => import('./commands/import.js'), 'runImport')));

  cli
    .command('pull')
    .description('Pull an image from a registry into the store')
    .argument('<image>', 'NAME[:TAG|@DIGEST], e.g. ubuntu:24.04 (Docker Hub), 127.0.0.1:5000/app:1')
    .option('--platform <os/arch[/variant]>', "the entry of a multi-platform image to pull (default: the host's)")
    .option('-q, --quiet', 'print only the image name')
    .addHelpText(
      'after',
      `
Names without a registry are Docker Hub's (ubuntu is docker.io/library/ubuntu:latest);
STRATA_REGISTRY_MIRRORS are tried first for them. Layers the store has are not fetched
again. FROM, COPY --from and RUN --mount from= pull what the store lacks by themselves.`,
    )
    .action(withStore(async (store, image: string, opts: { platform?: string; quiet?: boolean }) => (await import('./commands/pull.js')).runPull(store, image, opts)));

  cli
    .command('push')
    .description('Push an image from the store to a registry (skips the blobs it already has)')
    .argument('<image>', 'NAME[:TAG] in the store, e.g. localhost:5000/app:1, or an image ID with DEST')
    .argument('[dest]', "push under this REGISTRY/REPO:TAG instead of the image's own name")
    .option('--compression <gzip|zstd>', 'how layers strata built are compressed (default gzip)')
    .addHelpText(
      'after',
      `
The registry is the name's first component when it has a dot or a port or is localhost
(else Docker Hub). Loopback registries (localhost, 127.0.0.0/8) are spoken to over http, as
docker does; STRATA_INSECURE_REGISTRIES=host:port,... adds others. Credentials come from
$DOCKER_CONFIG/config.json or ~/.docker/config.json (strata login or docker login writes
them; credsStore and credHelpers are run as docker runs them). Layers strata built are
compressed as they stream and the compressed blob is kept, so a second push compresses
nothing; the pushed manifest then differs from the local one, and the digest printed is the
registry's. Blobs another repository of the registry holds are mounted, not uploaded.`,
    )
    .action(exits(lazy(() => import('./commands/push.js'), 'runPush')));

  cli
    .command('login')
    .description('Log in to a registry: check the credentials, then keep them in config.json (or its credential helper)')
    .argument('[server]', 'host[:port] of the registry (default: Docker Hub)')
    .option('-u, --username <name>', 'the username')
    .option('-p, --password <password>', 'the password (prefer --password-stdin)')
    .option('--password-stdin', 'read the password from standard input')
    .action(
      exits(async (server: string | undefined, opts: { username?: string; password?: string; passwordStdin?: boolean }) =>
        (await import('./commands/login.js')).runLogin(server, opts),
      ),
    );

  cli
    .command('logout')
    .description('Forget the credentials kept for a registry')
    .argument('[server]', 'host[:port] of the registry (default: Docker Hub)')
    .action(exits(async (server: string | undefined) => (await import('./commands/login.js')).runLogout(server)));

  const manifest = cli.command('manifest').description('Manifest lists: one name for images of several platforms (docker manifest)');
  manifest
    .command('create')
    .description("Make a local manifest list of images (in the store, or in the list's registry)")
    .argument('<list>', 'REGISTRY/REPO:TAG the list will be pushed as')
    .argument('<images...>', 'member images, one per platform')
    .option('-a, --amend', 'add to (or replace members of) an existing local list')
    .action(
      withStore(async (store, list: string, images: string[], opts: { amend?: boolean }) => (await import('./commands/manifest.js')).runManifestCreate(store, list, images, opts)),
    );
  manifest
    .command('annotate')
    .description("Set a member's platform in a local list")
    .argument('<list>', 'the local list')
    .argument('<image>', 'the member, as given to create')
    .option('--os <os>', 'operating system')
    .option('--arch <arch>', 'architecture')
    .option('--variant <variant>', 'architecture variant (e.g. v7, v8)')
    .action(
      withStore(async (store, list: string, image: string, opts: { os?: string; arch?: string; variant?: string }) =>
        (await import('./commands/manifest.js')).runManifestAnnotate(store, list, image, opts),
      ),
    );
  manifest
    .command('inspect')
    .description('Print a local list as the index it will push, or a manifest or index from a registry')
    .argument('<ref>', 'a local list, or REGISTRY/REPO[:TAG|@DIGEST]')
    .action(withStore(async (store, ref: string) => (await import('./commands/manifest.js')).runManifestInspect(store, ref)));
  manifest
    .command('push')
    .description('Push a local list: its members from the store first (by digest), then the index; prints its digest')
    .argument('<list>', 'the local list')
    .argument('[dest]', "push under this REGISTRY/REPO:TAG instead of the list's name")
    .option('--purge', 'remove the local list after the push')
    .option('--compression <gzip|zstd>', 'how layers strata built are compressed (default gzip)')
    .addHelpText(
      'after',
      `
The index is a docker manifest list when every member is a docker schema 2 manifest, and an
OCI image index otherwise (strata's own images push as OCI manifests, so OCI by default).`,
    )
    .action(
      withStore(async (store, list: string, dest: string | undefined, opts: { purge?: boolean; compression?: string }) =>
        (await import('./commands/manifest.js')).runManifestPush(store, list, dest, opts),
      ),
    );
  manifest
    .command('rm')
    .description('Remove local manifest lists')
    .argument('<lists...>', 'the local lists')
    .action(withStore(async (store, lists: string[]) => (await import('./commands/manifest.js')).runManifestRm(store, lists)));

  // ---- images: list, name, remove, inspect, move between machines ----
  const imagesOptions = (c: Command) =>
    c
      .option('-a, --all', "show all images: also the intermediate ones (each build step's image)")
      .option('-q, --quiet', 'only image IDs')
      .option('--digests', 'show digests')
      .option('--no-trunc', "don't truncate output")
      .option('-f, --filter <filter>', 'dangling=true|false, label=KEY[=VALUE], before=IMAGE, since=IMAGE, reference=PATTERN (repeatable)', collect, [])
      .option('--format <format>', "'table', 'table TEMPLATE', 'json', or a TEMPLATE of {{.ID}} {{.Repository}} {{.Tag}} {{.Digest}} {{.CreatedSince}} {{.CreatedAt}} {{.Size}}")
      .action(
        withStore(async (store, repo: string | undefined, opts: ImagesOptions & { trunc?: boolean }) =>
          (await import('./commands/images.js')).runImages(store, repo, { ...opts, noTrunc: opts.trunc === false }),
        ),
      );
  imagesOptions(cli.command('images').description('List images (tagged and untagged) in the store').argument('[repository]', 'only this REPOSITORY[:TAG]'));

  const rmiCommand = (c: Command) =>
    c
      .argument('<images...>', 'NAME[:TAG], NAME@DIGEST, or an image ID (or a unique prefix of one)')
      .option('-f, --force', 'remove an image by ID even when several tags name it')
      .action(withStore(async (store, refs: string[], opts: { force?: boolean }) => (await import('./commands/rmi.js')).runRmi(store, refs, opts)));
  rmiCommand(cli.command('rmi').description('Remove images: a name is untagged; the image and its unused layers go with its last name'));

  const tagCommand = (c: Command) =>
    c
      .argument('<source>', 'SOURCE_IMAGE[:TAG] or image ID')
      .argument('<target>', 'TARGET_IMAGE[:TAG]')
      .action(withStore(async (store, source: string, target: string) => (await import('./commands/tag.js')).runTag(store, source, target)));
  tagCommand(cli.command('tag').description('Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE'));

  const historyCommand = (c: Command) =>
    c
      .argument('<image>', 'NAME[:TAG] or image ID')
      .option('-H, --human [bool]', 'print sizes and dates in human readable format (-H=false: bytes and RFC 3339 dates)', (v: string) => !/^=?(false|0)$/i.test(v), true)
      .option('--no-trunc', "don't truncate output")
      .option('-q, --quiet', 'only image IDs')
      .option('--format <format>', "'table', 'table TEMPLATE', 'json', or a TEMPLATE of {{.ID}} {{.CreatedSince}} {{.CreatedAt}} {{.CreatedBy}} {{.Size}} {{.Comment}}")
      .action(
        withStore(async (store, ref: string, opts: { human: boolean; trunc?: boolean; quiet?: boolean; format?: string }) =>
          (await import('./commands/history.js')).runHistory(store, ref, { ...opts, noTrunc: opts.trunc === false }),
        ),
      );
  historyCommand(
    cli
      .command('history')
      .description('Show the history of an image')
      .addHelpText(
        'after',
        '\nA row shows an image ID where an image in the store has exactly the history up to that row\n(the image itself, the intermediate image of each step of a build, the base it was built FROM);\nother rows show <missing>, as docker does for images it did not build.',
      ),
  );

  const inspectCommand = (c: Command) =>
    c
      .argument('<images...>', 'NAME[:TAG] or image ID')
      .option('-f, --format <format>', 'a TEMPLATE of {{.Field}} / {{json .Field}}, e.g. {{.Id}} or {{json .Config}}')
      .action(withStore(async (store, refs: string[], opts: { format?: string }) => (await import('./commands/inspect.js')).runInspect(store, refs, opts)));
  inspectCommand(cli.command('inspect').description('Show images as docker image inspect does (JSON)'));

  const saveCommand = (c: Command) =>
    c
      .argument('<images...>', 'NAME[:TAG] (a NAME alone: all its tags) or image ID')
      .option('-o, --output <file>', 'write to this file (default: standard output, never a terminal)')
      .option(
        '--exclude-base <image>',
        'leave out the layers this image has (the target must have them; docker loads such a delta where the base is loaded) (repeatable)',
        collect,
        [],
      )
      .action(withStore(async (store, refs: string[], opts: SaveCliOptions) => (await import('./commands/save.js')).runSave(store, refs, opts)));
  saveCommand(cli.command('save').description('Save images to a tar archive (docker-archive and OCI layout in one) that docker, podman and skopeo read'));

  const loadCommand = (c: Command) =>
    c
      .option('-i, --input <file>', 'read from this archive (plain, gzip, bzip2, xz or zstd) instead of standard input')
      .option('-q, --quiet', 'suppress the progress output')
      .action(withStore(async (store, opts: { input?: string; quiet?: boolean }) => (await import('./commands/load.js')).runLoad(store, opts)));
  loadCommand(cli.command('load').description('Load images from a docker save / OCI archive (every digest checked; nothing kept unless all of it is right)'));

  cli
    .command('export')
    .description("Export an image's filesystem, flattened, as one tar (what docker export gives for a container of it)")
    .argument('<image>', 'NAME[:TAG] or image ID')
    .option('-o, --output <file>', 'write to this file (default: standard output, never a terminal)')
    .action(withStore(async (store, ref: string, opts: { output?: string }) => (await import('./commands/export.js')).runExport(store, ref, opts)));

  const pruneCommand = (c: Command) =>
    c
      .option('-a, --all', 'remove all images, not just dangling ones and unused intermediate ones (strata has no containers, so none is in use)')
      .option('-f, --force', 'do not prompt for confirmation')
      .option('--filter <filter>', 'until=TIME|DURATION, label=KEY[=VALUE], label!=KEY[=VALUE] (repeatable)', collect, [])
      .action(withStore(async (store, opts: PruneCliOptions) => (await import('./commands/rmi.js')).runImagePrune(store, opts)));

  const image = cli.command('image').description('Manage images (docker image …)');
  imagesOptions(image.command('ls').description('List images').argument('[repository]', 'only this REPOSITORY[:TAG]'));
  rmiCommand(image.command('rm').description('Remove images'));
  tagCommand(image.command('tag').description('Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE'));
  historyCommand(image.command('history').description('Show the history of an image'));
  inspectCommand(image.command('inspect').description('Show images as JSON'));
  saveCommand(image.command('save').description('Save images to a tar archive'));
  loadCommand(image.command('load').description('Load images from an archive'));
  pruneCommand(image.command('prune').description('Remove unused images (dangling ones; -a: all) and the layers only they used'));

  const system = cli.command('system').description('Store-wide information');
  system
    .command('df')
    .description(
      'Show disk usage: images, containers and volumes (none in strata), build cache (cache entries and the layers only they hold, contexts, logs, cache mounts, step image time records); RECLAIMABLE: what builder prune -a frees',
    )
    .option('-v, --verbose', 'show detailed information on space usage')
    .option('--format <format>', "'table', 'table TEMPLATE', 'json', or a TEMPLATE of {{.Type}} {{.TotalCount}} {{.Active}} {{.Size}} {{.Reclaimable}}")
    .action(withStore(async (store, opts: { verbose?: boolean; format?: string }) => (await import('./commands/system.js')).runSystemDf(store, opts)));

  const builder = cli.command('builder').description('Manage the build cache');
  builder
    .command('prune')
    .description('Remove build cache: cache entries, and the layers, contexts, blobs and logs nothing then refers to')
    .option('-a, --all', 'remove every cache entry, not only those whose layer no image uses, RUN cache mounts and intermediate images')
    .option('--filter <filter>', 'only what was last used before DURATION ago: until=DURATION, e.g. until=24h (repeatable)', collect, [])
    .option('--keep-storage <size>', 'remove least recently used cache only until the build cache takes SIZE, e.g. 5GB')
    .option('-f, --force', 'do not ask for confirmation')
    .addHelpText(
      'after',
      `
Never removed: layers and blobs an image (tagged or not) uses, and what a running build holds
(its leases). Without -a, cache entries whose layer an image uses stay too, and so do entries of
steps that changed nothing (they hold no space), and RUN cache mounts unless unused since the
--filter. See \`strata system df\` for what is reclaimable.`,
    )
    .action(exits(lazy(() => import('./commands/builder/prune.js'), 'runBuilderPrune')));

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
    .action(exits(lazy(() => import('./commands/schedule/create.js'), 'runScheduleCreate')));
  schedule
    .command('ls')
    .description('List the schedules')
    .action(exits(lazy(() => import('./commands/schedule/ls.js'), 'runScheduleLs')));
  schedule
    .command('describe')
    .description("Show a schedule: its spec, source, state and its recent runs' results")
    .argument('<id>')
    .action(exits(lazy(() => import('./commands/schedule/describe.js'), 'runScheduleDescribe')));
  schedule
    .command('trigger')
    .description('Run a schedule now (skipped while a run is still going)')
    .argument('<id>')
    .option('--wait', 'wait for the run and print its result (exit 1 if it failed)')
    .action(exits(lazy(() => import('./commands/schedule/trigger.js'), 'runScheduleTrigger')));
  schedule
    .command('pause')
    .description('Stop a schedule from running until unpaused')
    .argument('<id>')
    .option('--note <text>', 'why (shown by describe)')
    .action(exits(lazy(() => import('./commands/schedule/pause.js'), 'runSchedulePause')));
  schedule
    .command('unpause')
    .description('Let a paused schedule run again')
    .argument('<id>')
    .action(exits(lazy(() => import('./commands/schedule/unpause.js'), 'runScheduleUnpause')));
  schedule
    .command('rm')
    .description('Delete a schedule (a running build finishes; images stay)')
    .argument('<id>')
    .action(exits(lazy(() => import('./commands/schedule/rm.js'), 'runScheduleRm')));

  return cli;
}

/**
 * A usage error (unknown flag or command, missing or extra argument) prints commander's one
 * line and, instead of the whole help, where to read it: docker's `See 'docker build --help'.`
 */
function hintOnUsageErrors(cmd: Command): void {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  cmd.exitOverride().showHelpAfterError(`See '${names.join(' ')} --help'.`);
  for (const sub of cmd.commands) hintOnUsageErrors(sub);
}

export async function main(argv: string[]): Promise<void> {
  // `strata images | head`: a reader that has what it wanted is no error (docker ends quietly too).
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
  const cli = program();
  hintOnUsageErrors(cli);
  try {
    await cli.parseAsync(argv);
  } catch (err) {
    // --help and --version end commander's parse (status 0), as does the help a command group
    // shows when given no subcommand; its errors are printed already.
    if (err instanceof CommanderError) process.exitCode = err.exitCode === 0 || err.code.startsWith('commander.help') ? err.exitCode : EXIT_USAGE;
    else process.exitCode = reportError(err);
  }
}

await main(process.argv);
