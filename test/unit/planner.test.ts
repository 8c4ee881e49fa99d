// Golden plans for the planner: Dockerfile (+ build args, target) → stages and steps, or → the
// error and the line it names. The expected values are what `docker build` (BuildKit, and the
// classic builder where it is the oracle) does; rows where strata differs are `test.failing`
// with the reason, so they start to fail — and must be unmarked — when strata is fixed.

import { sha256 } from '../../engine/digest.js';
import { DockerfileError } from '../../engine/errors.js';
import { parseDockerfile } from '../../engine/dockerfile/parse.js';
import type { ContainerConfig, ImageConfigFile } from '../../engine/image/types.js';
import { planDockerfile, type ResolvedImage } from '../../engine/plan/planner.js';
import type { BaseSpec, BuildPlan, ConfigStep, CopyStep, FromStep, RunStep, StagePlan, Step, WorkdirStep } from '../../engine/plan/types.js';

// ---- a fake registry: every image has the same config ------------------------------------

const PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const BASE_CONFIG: ContainerConfig = { Env: [PATH], Cmd: ['sh'], WorkingDir: '' };

/** Refs starting with `missing` are not found, as a registry would answer. */
function fakeRegistry(): { calls: string[]; resolveImage: (ref: string) => Promise<ResolvedImage> } {
  const calls: string[] = [];
  const resolveImage = async (ref: string): Promise<ResolvedImage> => {
    calls.push(ref);
    if (ref.startsWith('missing')) throw new Error('manifest unknown');
    const config: ImageConfigFile = {
      architecture: 'amd64',
      os: 'linux',
      config: structuredClone(BASE_CONFIG),
      rootfs: { type: 'layers', diff_ids: [] },
      history: [],
    };
    return { ref, manifestDigest: sha256(`manifest ${ref}`), configDigest: sha256(`config ${ref}`), config };
  };
  return { calls, resolveImage };
}

interface Input {
  dockerfile: string;
  buildArgs?: Record<string, string>;
  target?: string;
}

async function plan(input: Input, registry = fakeRegistry()): Promise<BuildPlan> {
  return planDockerfile(parseDockerfile(input.dockerfile), {
    buildArgs: input.buildArgs ?? {},
    target: input.target,
    resolveImage: registry.resolveImage,
  });
}

// ---- expected values ----------------------------------------------------------------------

const image = (ref: string): BaseSpec => ({
  kind: 'image',
  ref,
  manifestDigest: sha256(`manifest ${ref}`),
  configDigest: sha256(`config ${ref}`),
});
const from = (number: number, line: number, text: string): FromStep => ({ kind: 'from', number, line, text });
const config = (number: number, line: number, text: string, patch: Partial<ContainerConfig>, createdBy: string): ConfigStep => ({
  kind: 'config',
  number,
  line,
  text,
  patch,
  history: { created_by: createdBy, empty_layer: true },
});
/** WORKDIR is a layer step: it creates the directory when missing. */
const workdir = (number: number, line: number, text: string, dir: string): WorkdirStep => ({
  kind: 'workdir',
  number,
  line,
  text,
  path: dir,
  patch: { WorkingDir: dir },
  history: { created_by: `WORKDIR ${dir}` },
});
const copy = (number: number, line: number, text: string, sources: string[], dest: string, createdBy: string, flags: { chown?: string; chmod?: number } = {}): CopyStep => ({
  kind: 'copy',
  number,
  line,
  text,
  instruction: 'COPY',
  sources,
  dest,
  ...flags,
  history: { created_by: createdBy },
});
/** history: see "history text as docker writes it" (docker prefixes the build args in scope). */
const run = (number: number, line: number, text: string, args: string[], env: string[], more: { user?: string; workdir: string; network?: 'host' | 'none' }): RunStep => ({
  kind: 'run',
  number,
  line,
  text,
  args,
  env,
  ...more,
  history: { created_by: DIFFERS },
});
const stage = (index: number, base: BaseSpec, steps: Step[], more: { name?: string; dependsOn?: number[] } = {}): StagePlan => ({
  index,
  name: more.name,
  base,
  dependsOn: more.dependsOn ?? [],
  steps,
});
/**
 * History text that strata writes differently from docker (JSON arrays where docker prints Go's
 * `%q`/`%v`): left out of the goldens and pinned in the "history text as docker writes it" table.
 */
const DIFFERS = expect.any(String) as string;

interface Golden extends Input {
  name: string;
  want: BuildPlan;
  /** The refs resolveImage must have been asked for, in order. */
  resolved?: string[];
}

const goldens: Golden[] = [
  // ENV
  {
    name: 'ENV k=v and legacy `ENV k v`, referring to earlier ENVs and to the base image PATH',
    dockerfile: [
      'FROM busybox',
      'ENV A=1 B="two words"',
      'ENV C $A-$B',
      'ENV PATH=$PATH:/x',
      // Every word of one ENV sees the environment from before the instruction: D=1, not 2.
      'ENV A=2 D=$A',
    ].join('\n'),
    want: {
      stages: [
        stage(0, image('busybox'), [
          from(1, 1, 'FROM busybox'),
          config(2, 2, 'ENV A=1 B="two words"', { Env: [PATH, 'A=1', 'B=two words'] }, 'ENV A=1 B=two words'),
          config(3, 3, 'ENV C $A-$B', { Env: [PATH, 'A=1', 'B=two words', 'C=1-two words'] }, 'ENV C=1-two words'),
          config(4, 4, 'ENV PATH=$PATH:/x', { Env: [`${PATH}:/x`, 'A=1', 'B=two words', 'C=1-two words'] }, `ENV ${PATH}:/x`),
          config(5, 5, 'ENV A=2 D=$A', { Env: [`${PATH}:/x`, 'A=2', 'B=two words', 'C=1-two words', 'D=1'] }, 'ENV A=2 D=1'),
        ]),
      ],
      target: 0,
      totalSteps: 5,
      warnings: [],
    },
    resolved: ['busybox'],
  },
  // ARG
  {
    name: 'ARG BASE=busybox / FROM $BASE; the global ARG is unset in the stage until `ARG BASE` re-declares it',
    dockerfile: ['ARG BASE=busybox', 'ARG UNSET', 'FROM $BASE', 'LABEL base=$BASE', 'ARG BASE', 'LABEL base=$BASE'].join('\n'),
    want: {
      stages: [
        stage(0, image('busybox'), [
          from(1, 3, 'FROM $BASE'),
          config(2, 4, 'LABEL base=$BASE', { Labels: { base: '' } }, 'LABEL base='),
          config(3, 5, 'ARG BASE', {}, 'ARG BASE=busybox'),
          config(4, 6, 'LABEL base=$BASE', { Labels: { base: 'busybox' } }, 'LABEL base=busybox'),
        ]),
      ],
      target: 0,
      totalSteps: 4,
      warnings: [],
    },
    resolved: ['busybox'],
  },
  {
    name: 'global ARG defaults built from earlier global ARGs: ARG A=alp / ARG B=${A}ine / FROM $B',
    dockerfile: ['ARG A=alp', 'ARG B=${A}ine:3', 'FROM $B'].join('\n'),
    want: { stages: [stage(0, image('alpine:3'), [from(1, 3, 'FROM $B')])], target: 0, totalSteps: 1, warnings: [] },
    resolved: ['alpine:3'],
  },
  {
    name: '--build-arg BASE=alpine V=cli overrides the global and the stage ARG defaults',
    dockerfile: ['ARG BASE=busybox', 'FROM $BASE', 'ARG V=default W=w', 'ENV V=$V W=$W'].join('\n'),
    buildArgs: { BASE: 'alpine', V: 'cli' },
    want: {
      stages: [
        stage(0, image('alpine'), [
          from(1, 2, 'FROM $BASE'),
          config(2, 3, 'ARG V=default W=w', {}, 'ARG V=cli W=w'),
          config(3, 4, 'ENV V=$V W=$W', { Env: [PATH, 'V=cli', 'W=w'] }, 'ENV V=cli W=w'),
        ]),
      ],
      target: 0,
      totalSteps: 3,
      warnings: [],
    },
    resolved: ['alpine'],
  },
  {
    name: '--build-arg V=cli reaches `ARG V` re-declaring a global ARG V=global',
    dockerfile: ['ARG V=global', 'FROM busybox', 'ARG V', 'LABEL v=$V'].join('\n'),
    buildArgs: { V: 'cli' },
    want: {
      stages: [
        stage(0, image('busybox'), [from(1, 2, 'FROM busybox'), config(2, 3, 'ARG V', {}, 'ARG V=cli'), config(3, 4, 'LABEL v=$V', { Labels: { v: 'cli' } }, 'LABEL v=cli')]),
      ],
      target: 0,
      totalSteps: 3,
      warnings: [],
    },
  },
  {
    name: 'ARG V=arg then ENV V=env: ENV wins in later expansions',
    dockerfile: ['FROM busybox', 'ARG V=arg', 'LABEL a=$V', 'ENV V=env', 'LABEL b=$V'].join('\n'),
    want: {
      stages: [
        stage(0, image('busybox'), [
          from(1, 1, 'FROM busybox'),
          config(2, 2, 'ARG V=arg', {}, 'ARG V=arg'),
          config(3, 3, 'LABEL a=$V', { Labels: { a: 'arg' } }, 'LABEL a=arg'),
          config(4, 4, 'ENV V=env', { Env: [PATH, 'V=env'] }, 'ENV V=env'),
          config(5, 5, 'LABEL b=$V', { Labels: { a: 'arg', b: 'env' } }, 'LABEL b=env'),
        ]),
      ],
      target: 0,
      totalSteps: 5,
      warnings: [],
    },
  },
  {
    name: 'unused --build-arg UNUSED and AAA: one warning, names sorted; used V is not named',
    dockerfile: ['FROM busybox', 'ARG V'].join('\n'),
    buildArgs: { UNUSED: '1', V: 'x', AAA: '' },
    want: {
      stages: [stage(0, image('busybox'), [from(1, 1, 'FROM busybox'), config(2, 2, 'ARG V', {}, 'ARG V=x')])],
      target: 0,
      totalSteps: 2,
      warnings: ['One or more build-args [AAA UNUSED] were not consumed'],
    },
  },
  {
    name: 'ENV ${P}_HOME=… expands the key as well as the value, with the ENV before the line',
    dockerfile: ['FROM busybox', 'ENV P=app', 'ENV ${P}_HOME=/srv/$P P=next ${P}_MODE=$P'].join('\n'),
    want: {
      stages: [
        stage(0, image('busybox'), [
          from(1, 1, 'FROM busybox'),
          config(2, 2, 'ENV P=app', { Env: [PATH, 'P=app'] }, 'ENV P=app'),
          config(3, 3, 'ENV ${P}_HOME=/srv/$P P=next ${P}_MODE=$P', { Env: [PATH, 'P=next', 'app_HOME=/srv/app', 'app_MODE=app'] }, 'ENV app_HOME=/srv/app P=next app_MODE=app'),
        ]),
      ],
      target: 0,
      totalSteps: 3,
      warnings: [],
    },
  },
  {
    name: 'ARG A=b B=$A C=${B}c: each default sees the ARGs before it on the same line (BuildKit)',
    dockerfile: ['FROM busybox', 'ARG A=a', 'ARG A=b B=$A C=${B}c', 'LABEL l=$A$B$C'].join('\n'),
    want: {
      stages: [
        stage(0, image('busybox'), [
          from(1, 1, 'FROM busybox'),
          config(2, 2, 'ARG A=a', {}, 'ARG A=a'),
          config(3, 3, 'ARG A=b B=$A C=${B}c', {}, 'ARG A=b B=b C=bc'),
          config(4, 4, 'LABEL l=$A$B$C', { Labels: { l: 'bbbc' } }, 'LABEL l=bbbc'),
        ]),
      ],
      target: 0,
      totalSteps: 4,
      warnings: [],
    },
  },
  // WORKDIR
  {
    name: 'WORKDIR app / sub/../lib / $D/data / rel: relative to the previous WORKDIR, expanded, cleaned',
    dockerfile: ['FROM busybox', 'WORKDIR app', 'WORKDIR sub/../lib/', 'ENV D=/srv', 'WORKDIR $D/data', 'WORKDIR rel'].join('\n'),
    want: {
      stages: [
        stage(0, image('busybox'), [
          from(1, 1, 'FROM busybox'),
          workdir(2, 2, 'WORKDIR app', '/app'),
          workdir(3, 3, 'WORKDIR sub/../lib/', '/app/lib'),
          config(4, 4, 'ENV D=/srv', { Env: [PATH, 'D=/srv'] }, 'ENV D=/srv'),
          workdir(5, 5, 'WORKDIR $D/data', '/srv/data'),
          workdir(6, 6, 'WORKDIR rel', '/srv/data/rel'),
        ]),
      ],
      target: 0,
      totalSteps: 6,
      warnings: [],
    },
  },
  // COPY
  {
    name: 'WORKDIR /a/../b/ and /c/: an absolute path stays as written in the config, cleaned for use',
    dockerfile: ['FROM busybox', 'WORKDIR /a/../b/', 'WORKDIR c/', 'WORKDIR /d/', 'RUN pwd'].join('\n'),
    want: {
      stages: [
        stage(0, image('busybox'), [
          from(1, 1, 'FROM busybox'),
          { ...workdir(2, 2, 'WORKDIR /a/../b/', '/a/../b/'), path: '/b/' },
          workdir(3, 3, 'WORKDIR c/', '/b/c'),
          workdir(4, 4, 'WORKDIR /d/', '/d/'),
          run(5, 5, 'RUN pwd', ['/bin/sh', '-c', 'pwd'], [PATH], { workdir: '/d/' }),
        ]),
      ],
      target: 0,
      totalSteps: 5,
      warnings: [],
    },
  },
  {
    name: 'COPY dest: absolute, relative to WORKDIR, trailing slash, `.`, several sources into ./, JSON form, expanded',
    dockerfile: [
      'FROM busybox',
      'COPY a b',
      'WORKDIR /app',
      'COPY a b',
      'COPY a b/',
      'COPY a .',
      'COPY a b c ./',
      'COPY ["x y", "dst dir/"]',
      'ENV DEST=conf',
      'COPY $DEST/a.conf ${DEST}/',
      'COPY *.txt notes',
    ].join('\n'),
    want: {
      stages: [
        stage(0, image('busybox'), [
          from(1, 1, 'FROM busybox'),
          copy(2, 2, 'COPY a b', ['a'], '/b', 'COPY a b'),
          workdir(3, 3, 'WORKDIR /app', '/app'),
          copy(4, 4, 'COPY a b', ['a'], '/app/b', 'COPY a b'),
          copy(5, 5, 'COPY a b/', ['a'], '/app/b/', 'COPY a b/'),
          copy(6, 6, 'COPY a .', ['a'], '/app/', 'COPY a .'),
          copy(7, 7, 'COPY a b c ./', ['a', 'b', 'c'], '/app/', 'COPY a b c ./'),
          copy(8, 8, 'COPY ["x y", "dst dir/"]', ['x y'], '/app/dst dir/', 'COPY x y dst dir/'),
          config(9, 9, 'ENV DEST=conf', { Env: [PATH, 'DEST=conf'] }, 'ENV DEST=conf'),
          copy(10, 10, 'COPY $DEST/a.conf ${DEST}/', ['conf/a.conf'], '/app/conf/', 'COPY conf/a.conf conf/'),
          // A wildcard into a non-directory is only an error when it matches several files.
          copy(11, 11, 'COPY *.txt notes', ['*.txt'], '/app/notes', 'COPY *.txt notes'),
        ]),
      ],
      target: 0,
      totalSteps: 11,
      warnings: [],
    },
  },
  {
    name: 'COPY --chown=$U:$G expanded, --chmod=0755 and 644 octal',
    dockerfile: ['FROM busybox', 'ARG U=app', 'ENV G=staff', 'COPY --chown=$U:$G --chmod=0755 run.sh /bin/', 'COPY --chmod=644 b /etc/b'].join('\n'),
    want: {
      stages: [
        stage(0, image('busybox'), [
          from(1, 1, 'FROM busybox'),
          config(2, 2, 'ARG U=app', {}, 'ARG U=app'),
          config(3, 3, 'ENV G=staff', { Env: [PATH, 'G=staff'] }, 'ENV G=staff'),
          copy(4, 4, 'COPY --chown=$U:$G --chmod=0755 run.sh /bin/', ['run.sh'], '/bin/', DIFFERS, { chown: 'app:staff', chmod: 0o755 }),
          copy(5, 5, 'COPY --chmod=644 b /etc/b', ['b'], '/etc/b', DIFFERS, { chmod: 0o644 }),
        ]),
      ],
      target: 0,
      totalSteps: 5,
      warnings: [],
    },
  },
  // CMD and ENTRYPOINT
  {
    name: 'CMD shell form runs through SHELL; a later ENTRYPOINT keeps the CMD set in this stage',
    dockerfile: ['FROM busybox', 'SHELL ["/bin/bash", "-c"]', 'CMD echo $HOME', 'ENTRYPOINT ["/init"]'].join('\n'),
    want: {
      stages: [
        stage(0, image('busybox'), [
          from(1, 1, 'FROM busybox'),
          config(2, 2, 'SHELL ["/bin/bash", "-c"]', { Shell: ['/bin/bash', '-c'] }, DIFFERS),
          // CMD is not expanded: $HOME is for the shell at run time.
          config(3, 3, 'CMD echo $HOME', { Cmd: ['/bin/bash', '-c', 'echo $HOME'] }, DIFFERS),
          config(4, 4, 'ENTRYPOINT ["/init"]', { Entrypoint: ['/init'] }, 'ENTRYPOINT ["/init"]'),
        ]),
      ],
      target: 0,
      totalSteps: 4,
      warnings: [],
    },
  },
  {
    name: 'ENTRYPOINT resets the CMD inherited from the base image; a CMD after it stays',
    dockerfile: ['FROM busybox', 'ENTRYPOINT ["/init"]', 'CMD ["run"]'].join('\n'),
    want: {
      stages: [
        stage(0, image('busybox'), [
          from(1, 1, 'FROM busybox'),
          config(2, 2, 'ENTRYPOINT ["/init"]', { Entrypoint: ['/init'], Cmd: null }, 'ENTRYPOINT ["/init"]'),
          config(3, 3, 'CMD ["run"]', { Cmd: ['run'] }, 'CMD ["run"]'),
        ]),
      ],
      target: 0,
      totalSteps: 3,
      warnings: [],
    },
  },
  {
    name: 'ENTRYPOINT exec app: shell form with the default /bin/sh -c, inherited CMD reset',
    dockerfile: ['FROM busybox', 'ENTRYPOINT exec app'].join('\n'),
    want: {
      stages: [stage(0, image('busybox'), [from(1, 1, 'FROM busybox'), config(2, 2, 'ENTRYPOINT exec app', { Entrypoint: ['/bin/sh', '-c', 'exec app'], Cmd: null }, DIFFERS)])],
      target: 0,
      totalSteps: 2,
      warnings: [],
    },
  },
  // EXPOSE
  {
    name: 'EXPOSE 80 53/udp 8000-8001, then EXPOSE $P adds to them',
    dockerfile: ['FROM busybox', 'EXPOSE 80 53/udp 8000-8001', 'ENV P=443', 'EXPOSE $P'].join('\n'),
    want: {
      stages: [
        stage(0, image('busybox'), [
          from(1, 1, 'FROM busybox'),
          config(2, 2, 'EXPOSE 80 53/udp 8000-8001', { ExposedPorts: { '80/tcp': {}, '53/udp': {}, '8000/tcp': {}, '8001/tcp': {} } }, DIFFERS),
          config(3, 3, 'ENV P=443', { Env: [PATH, 'P=443'] }, 'ENV P=443'),
          config(4, 4, 'EXPOSE $P', { ExposedPorts: { '80/tcp': {}, '53/udp': {}, '8000/tcp': {}, '8001/tcp': {}, '443/tcp': {} } }, DIFFERS),
        ]),
      ],
      target: 0,
      totalSteps: 4,
      warnings: [],
    },
  },
  // RUN
  {
    name: 'RUN shell form and exec form: argv through SHELL, env = Env + build args (ENV wins), USER, WORKDIR, --network',
    dockerfile: [
      'FROM busybox',
      'ARG V=arg',
      'ARG PATH=/from-arg',
      'ENV E=env',
      'USER app',
      'RUN echo $V',
      'SHELL ["/bin/bash", "-c"]',
      'WORKDIR /w',
      'RUN --network=none ["make", "all"]',
    ].join('\n'),
    want: {
      stages: [
        stage(0, image('busybox'), [
          from(1, 1, 'FROM busybox'),
          config(2, 2, 'ARG V=arg', {}, 'ARG V=arg'),
          config(3, 3, 'ARG PATH=/from-arg', {}, 'ARG PATH=/from-arg'),
          config(4, 4, 'ENV E=env', { Env: [PATH, 'E=env'] }, 'ENV E=env'),
          config(5, 5, 'USER app', { User: 'app' }, 'USER app'),
          // RUN is not expanded by the builder: $V is for the shell, which gets V in its env.
          run(6, 6, 'RUN echo $V', ['/bin/sh', '-c', 'echo $V'], [PATH, 'E=env', 'V=arg'], { user: 'app', workdir: '/' }),
          config(7, 7, 'SHELL ["/bin/bash", "-c"]', { Shell: ['/bin/bash', '-c'] }, DIFFERS),
          workdir(8, 8, 'WORKDIR /w', '/w'),
          run(9, 9, 'RUN --network=none ["make", "all"]', ['make', 'all'], [PATH, 'E=env', 'V=arg'], { user: 'app', workdir: '/w', network: 'none' }),
        ]),
      ],
      target: 0,
      totalSteps: 9,
      warnings: [],
    },
  },
  // Stages
  {
    name: 'FROM BUILD names the earlier stage `build` (case-insensitive); an unneeded stage is neither planned nor resolved',
    dockerfile: ['FROM busybox AS Build', 'ENV STAGE=build', 'FROM alpine AS unused', 'ENV X=1', 'FROM BUILD AS final', 'LABEL from=$STAGE'].join('\n'),
    want: {
      stages: [
        stage(0, image('busybox'), [from(1, 1, 'FROM busybox AS Build'), config(2, 2, 'ENV STAGE=build', { Env: [PATH, 'STAGE=build'] }, 'ENV STAGE=build')], {
          name: 'build',
        }),
        // The stage starts from the build stage's config: its ENV is visible.
        stage(2, { kind: 'stage', stage: 0 }, [from(3, 5, 'FROM BUILD AS final'), config(4, 6, 'LABEL from=$STAGE', { Labels: { from: 'build' } }, 'LABEL from=build')], {
          name: 'final',
          dependsOn: [0],
        }),
      ],
      target: 2,
      totalSteps: 4,
      warnings: [],
    },
    resolved: ['busybox'],
  },
  {
    name: 'FROM $STAGE where a global ARG names an earlier stage',
    dockerfile: ['ARG STAGE=base', 'FROM scratch AS base', 'FROM $STAGE'].join('\n'),
    want: {
      stages: [
        stage(0, { kind: 'scratch' }, [{ ...from(1, 2, 'FROM scratch AS base'), patch: { Env: [PATH] } }], { name: 'base' }),
        stage(1, { kind: 'stage', stage: 0 }, [from(2, 3, 'FROM $STAGE')], { dependsOn: [0] }),
      ],
      target: 1,
      totalSteps: 2,
      warnings: [],
    },
    resolved: [],
  },
  {
    name: '--target one: later stages are pruned, so their broken COPY --bogus and RUN do not fail planning',
    dockerfile: ['FROM busybox AS one', 'ENV X=1', 'FROM one AS two', 'COPY --bogus a b', 'RUN make'].join('\n'),
    target: 'one',
    want: {
      stages: [stage(0, image('busybox'), [from(1, 1, 'FROM busybox AS one'), config(2, 2, 'ENV X=1', { Env: [PATH, 'X=1'] }, 'ENV X=1')], { name: 'one' })],
      target: 0,
      totalSteps: 2,
      warnings: [],
    },
  },
  {
    name: '--target final with stages a, b (unneeded), final FROM a: numbering runs across the built stages',
    dockerfile: ['FROM busybox AS a', 'ENV A=1', 'LABEL stage=a', 'FROM alpine AS b', 'ENV B=1', 'FROM a AS final', 'ENV F=1', 'FROM scratch AS after', 'COPY --bogus x y'].join(
      '\n',
    ),
    target: 'final',
    want: {
      stages: [
        stage(
          0,
          image('busybox'),
          [from(1, 1, 'FROM busybox AS a'), config(2, 2, 'ENV A=1', { Env: [PATH, 'A=1'] }, 'ENV A=1'), config(3, 3, 'LABEL stage=a', { Labels: { stage: 'a' } }, 'LABEL stage=a')],
          { name: 'a' },
        ),
        stage(2, { kind: 'stage', stage: 0 }, [from(4, 6, 'FROM a AS final'), config(5, 7, 'ENV F=1', { Env: [PATH, 'A=1', 'F=1'] }, 'ENV F=1')], {
          name: 'final',
          dependsOn: [0],
        }),
      ],
      target: 2,
      totalSteps: 5,
      warnings: [],
    },
    resolved: ['busybox'],
  },
];

goldens.push(
  {
    name: 'COPY --from by name (any case), by index and from an image: dependencies recorded, the image pinned',
    dockerfile: [
      'FROM busybox AS build',
      'FROM scratch AS assets',
      'FROM alpine',
      'COPY --from=BUILD /out /app/',
      'COPY --from=1 --link --parents --exclude=*.map --exclude=tmp /a/./b /assets/',
      'COPY --from=nginx:1 /etc/nginx/nginx.conf /nginx.conf',
    ].join('\n'),
    want: {
      stages: [
        stage(0, image('busybox'), [from(1, 1, 'FROM busybox AS build')], { name: 'build' }),
        stage(1, { kind: 'scratch' }, [{ ...from(2, 2, 'FROM scratch AS assets'), patch: { Env: [PATH] } }], { name: 'assets' }),
        stage(
          2,
          image('alpine'),
          [
            from(3, 3, 'FROM alpine'),
            { ...copy(4, 4, 'COPY --from=BUILD /out /app/', ['/out'], '/app/', 'COPY /out /app/'), from: { kind: 'stage', stage: 0 } },
            {
              ...copy(5, 5, 'COPY --from=1 --link --parents --exclude=*.map --exclude=tmp /a/./b /assets/', ['/a/./b'], '/assets/', 'COPY --parents /a/./b /assets/'),
              from: { kind: 'stage', stage: 1 },
              link: true,
              parents: true,
              excludes: ['*.map', 'tmp'],
            },
            {
              ...copy(6, 6, 'COPY --from=nginx:1 /etc/nginx/nginx.conf /nginx.conf', ['/etc/nginx/nginx.conf'], '/nginx.conf', 'COPY /etc/nginx/nginx.conf /nginx.conf'),
              from: { kind: 'image', ref: 'nginx:1', manifestDigest: sha256('manifest nginx:1'), configDigest: sha256('config nginx:1') },
            },
          ],
          { dependsOn: [0, 1] },
        ),
      ],
      target: 2,
      totalSteps: 6,
      warnings: [],
    },
    resolved: ['busybox', 'alpine', 'nginx:1'],
  },
  {
    name: 'a chain of three stages, --target picking the middle one: the last stage and its broken COPY are pruned',
    dockerfile: ['FROM busybox AS one', 'FROM busybox AS two', 'COPY --from=one /x /x', 'FROM busybox AS three', 'COPY --from=two /x /x', 'COPY --from=three /x /y'].join('\n'),
    target: 'two',
    want: {
      stages: [
        stage(0, image('busybox'), [from(1, 1, 'FROM busybox AS one')], { name: 'one' }),
        stage(1, image('busybox'), [from(2, 2, 'FROM busybox AS two'), { ...copy(3, 3, 'COPY --from=one /x /x', ['/x'], '/x', 'COPY /x /x'), from: { kind: 'stage', stage: 0 } }], {
          name: 'two',
          dependsOn: [0],
        }),
      ],
      target: 1,
      totalSteps: 3,
      warnings: [],
    },
  },
  {
    name: 'COPY --from=$STAGE expands a global ARG',
    dockerfile: ['ARG STAGE=build', 'FROM busybox AS build', 'FROM scratch', 'COPY --from=$STAGE /x /x'].join('\n'),
    want: {
      stages: [
        stage(0, image('busybox'), [from(1, 2, 'FROM busybox AS build')], { name: 'build' }),
        stage(
          1,
          { kind: 'scratch' },
          [
            { ...from(2, 3, 'FROM scratch'), patch: { Env: [PATH] } },
            { ...copy(3, 4, 'COPY --from=$STAGE /x /x', ['/x'], '/x', 'COPY /x /x'), from: { kind: 'stage', stage: 0 } },
          ],
          {
            dependsOn: [0],
          },
        ),
      ],
      target: 1,
      totalSteps: 3,
      warnings: [],
    },
  },
);

describe('planDockerfile golden plans', () => {
  test.each(goldens)('$name', async (row) => {
    const registry = fakeRegistry();
    const got = await plan(row, registry);
    expect(got).toEqual(row.want);
    if (row.resolved) expect(registry.calls).toEqual(row.resolved);
  });
});

// ---- errors: the message, and the line it names ----------------------------------------

interface ErrorRow extends Input {
  name: string;
  line: number;
  message: string;
}

const errors: ErrorRow[] = [
  { name: 'HEALTHCHECK --interval=5 CMD true (no unit)', dockerfile: 'FROM busybox\nHEALTHCHECK --interval=5 CMD true\n', line: 2, message: 'invalid duration "5"' },
  { name: 'HEALTHCHECK --timeout=10us CMD true', dockerfile: 'FROM busybox\nHEALTHCHECK --timeout=10us CMD true\n', line: 2, message: 'less than 1ms' },
  { name: 'HEALTHCHECK --retries=-1 CMD true', dockerfile: 'FROM busybox\nHEALTHCHECK --retries=-1 CMD true\n', line: 2, message: 'cannot be negative' },
  { name: 'HEALTHCHECK --bogus=1 CMD true', dockerfile: 'FROM busybox\nHEALTHCHECK --bogus=1 CMD true\n', line: 2, message: 'unknown flag --bogus' },
  { name: 'RUN --mount=type=ssh make', dockerfile: 'FROM busybox\nENV A=1\nRUN --mount=type=ssh make\n', line: 3, message: 'type=ssh is not supported' },
  { name: 'RUN --network=bogus true', dockerfile: 'FROM busybox\nRUN --network=bogus true\n', line: 2, message: '--network' },
  {
    name: 'COPY a b c (several sources, dest without a slash)',
    dockerfile: 'FROM busybox\nWORKDIR /app\nCOPY a b c\n',
    line: 3,
    message: 'When using COPY with more than one source file, the destination must be a directory and end with a /',
  },
  { name: 'COPY --bogus a b', dockerfile: 'FROM busybox\nCOPY --bogus a b\n', line: 2, message: '--bogus' },
  { name: 'COPY --chmod=789 a b (not octal)', dockerfile: 'FROM busybox\nCOPY --chmod=789 a b\n', line: 2, message: '--chmod' },
  { name: 'COPY --chmod=17777 a b (above 07777)', dockerfile: 'FROM busybox\nCOPY --chmod=17777 a b\n', line: 2, message: 'more than 07777' },
  { name: 'COPY --chmod=u+q a b (no such permission)', dockerfile: 'FROM busybox\nCOPY --chmod=u+q a b\n', line: 2, message: 'octal or symbolic mode' },
  { name: 'COPY --chmod=ux a b (no operator)', dockerfile: 'FROM busybox\nCOPY --chmod=ux a b\n', line: 2, message: 'octal or symbolic mode' },
  { name: 'COPY --link --chown=app a b (names need a passwd file)', dockerfile: 'FROM busybox\nCOPY --link --chown=app a b\n', line: 2, message: 'numeric ids' },
  { name: 'COPY --link=maybe a b', dockerfile: 'FROM busybox\nCOPY --link=maybe a b\n', line: 2, message: '--link must be true or false' },
  { name: 'COPY --chmod=600 --chmod=644 a b', dockerfile: 'FROM busybox\nCOPY --chmod=600 --chmod=644 a b\n', line: 2, message: '--chmod given twice' },
  {
    name: 'COPY --from=nope (no such stage, and no such image)',
    dockerfile: 'FROM busybox AS build\nFROM scratch\nCOPY --from=missing-stage /x /x\n',
    line: 3,
    message: 'COPY --from=missing-stage: no stage of that name, and no such image: manifest unknown',
  },
  { name: 'COPY --from=5 (no stage with that index)', dockerfile: 'FROM busybox\nCOPY --from=5 /x /x\n', line: 2, message: 'there is no stage with index 5' },
  { name: 'COPY --from=self (the stage itself)', dockerfile: 'FROM busybox AS self\nCOPY --from=self /x /x\n', line: 2, message: 'a stage cannot copy from itself' },
  { name: 'COPY --from=0 inside stage 0', dockerfile: 'FROM busybox\nCOPY --from=0 /x /x\n', line: 2, message: 'a stage cannot copy from itself' },
  {
    name: 'COPY --from=later (a stage defined further down)',
    dockerfile: 'FROM busybox AS early\nCOPY --from=later /x /x\nFROM busybox AS later\n',
    target: 'early',
    line: 2,
    message: 'stage later is defined later (line 3)',
  },
  {
    name: 'a cycle: a copies from b, b from a',
    dockerfile: 'FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /y /y\n',
    line: 2,
    message: 'COPY --from=b: stage b is defined later',
  },
  { name: 'COPY --chown=$NOBODY a b (expands to nothing)', dockerfile: 'FROM busybox\nCOPY --chown=$NOBODY a b\n', line: 2, message: '--chown' },
  { name: 'ADD --checksum=md5:abc (not a digest)', dockerfile: 'FROM busybox\nADD --checksum=md5:abc https://h/x /x\n', line: 2, message: '--checksum must be' },
  {
    name: 'ADD --checksum on a context file',
    dockerfile: `FROM busybox\nADD --checksum=sha256:${'0'.repeat(64)} a.txt /x\n`,
    line: 2,
    message: '--checksum is only supported for http(s) sources',
  },
  { name: 'ADD ftp://h/x /x (unsupported scheme)', dockerfile: 'FROM busybox\nADD ftp://h/x /x\n', line: 2, message: 'unsupported source URL "ftp://h/x"' },
  {
    name: 'ADD https://h/r.git#--upload-pack=x /x (a ref git would take as an option)',
    dockerfile: 'FROM busybox\nADD https://h/r.git#--upload-pack=x /x\n',
    line: 2,
    message: 'invalid git source',
  },
  { name: 'COPY https://h/x /x', dockerfile: 'FROM busybox\nCOPY https://h/x /x\n', line: 2, message: "source can't be a URL for COPY" },
  { name: 'EXPOSE abc', dockerfile: 'FROM busybox\nEXPOSE abc\n', line: 2, message: 'invalid port "abc"' },
  { name: 'EXPOSE 80/xyz', dockerfile: 'FROM busybox\n\nEXPOSE 80/xyz\n', line: 3, message: 'invalid port "80/xyz"' },
  { name: 'EXPOSE 70000', dockerfile: 'FROM busybox\nEXPOSE 70000\n', line: 2, message: 'invalid port "70000"' },
  { name: 'EXPOSE 9000-8000 (range backwards)', dockerfile: 'FROM busybox\nEXPOSE 9000-8000\n', line: 2, message: 'invalid port' },
  {
    name: 'unknown --target nope',
    dockerfile: 'FROM busybox AS one\n',
    target: 'nope',
    line: 1,
    message: 'target stage "nope" could not be found',
  },
  {
    name: 'no --target: the last stage needs every stage, so COPY --bogus in it fails',
    dockerfile: 'FROM busybox AS one\nENV X=1\nFROM one AS two\nCOPY --bogus a b\nRUN make\n',
    line: 4,
    message: '--bogus',
  },
  { name: 'FROM missing:1 (resolveImage fails)', dockerfile: '# comment\nFROM missing:1\n', line: 2, message: 'FROM missing:1: manifest unknown' },
  { name: 'FROM $UNSET (blank base name)', dockerfile: 'FROM $UNSET\n', line: 1, message: 'base name should not be blank' },
];

describe('planDockerfile errors', () => {
  test.each(errors)('$name', async (row) => {
    const thrown = await plan(row).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(thrown).toBeInstanceOf(DockerfileError);
    const err = thrown as DockerfileError;
    expect(err.location).toEqual({ file: 'Dockerfile', line: row.line });
    expect(err.message).toContain(`Dockerfile:${row.line}: `);
    expect(err.message).toContain(row.message);
  });
});

// ---- history text as docker writes it -----------------------------------------------------

interface HistoryRow {
  name: string;
  /** Instructions after `FROM busybox`; the last one's history is checked. */
  lines: string[];
  createdBy: string;
}

// Both builders format these with Go's fmt: `%q` of a []string for CMD and ENTRYPOINT
// (`["nginx" "-g" "daemon off;"]`), `%v` for SHELL, VOLUME and EXPOSE (`[/data /x]`), and
// BuildKit's COPY history names --chown/--chmod (dockerfile2llb convert.go, convert_copy.go,
// convert_expose.go). `docker history` shows this text.
const historyAgrees: HistoryRow[] = [
  { name: 'CMD ["sh"]', lines: ['CMD ["sh"]'], createdBy: 'CMD ["sh"]' },
  { name: 'USER app:app', lines: ['USER app:app'], createdBy: 'USER app:app' },
  { name: 'STOPSIGNAL SIGKILL', lines: ['STOPSIGNAL SIGKILL'], createdBy: 'STOPSIGNAL SIGKILL' },
  { name: 'LABEL "a b"=c', lines: ['LABEL "a b"=c'], createdBy: 'LABEL a b=c' },
  { name: 'MAINTAINER me', lines: ['MAINTAINER me'], createdBy: 'MAINTAINER me' },
  { name: 'WORKDIR a/../b', lines: ['WORKDIR a/../b'], createdBy: 'WORKDIR /b' },
  // BuildKit appends its own " # buildkit" marker to layer steps; strata writes the rest alike.
  { name: 'RUN echo hi (no build args in scope)', lines: ['RUN echo hi'], createdBy: 'RUN /bin/sh -c echo hi' },
  // Heredoc RUNs record the argv BuildKit runs (dispatchRun): the body as the script, the
  // shebang file's mount path, or the command with its bodies put back for the shell.
  { name: 'RUN <<EOF (body as script)', lines: ['RUN <<EOF', 'echo a', 'EOF'], createdBy: 'RUN /bin/sh -c echo a\n' },
  { name: 'RUN <<EOF with #! line', lines: ['RUN <<EOF', '#!/usr/bin/env python3', 'print(1)', 'EOF'], createdBy: 'RUN /bin/sh -c /dev/pipes/EOF' },
  { name: 'RUN python3 <<EOF', lines: ['RUN python3 <<EOF', 'print(1)', 'EOF'], createdBy: 'RUN /bin/sh -c python3 <<EOF\nprint(1)\nEOF' },
  { name: 'RUN --mount=type=cache,target=/c true', lines: ['RUN --mount=type=cache,target=/c true'], createdBy: 'RUN /bin/sh -c true' },
  { name: 'COPY a <<EOF /d/', lines: ['COPY a <<EOF /d/', 'x', 'EOF'], createdBy: 'COPY a <<EOF /d/' },
  { name: 'COPY --chown=app --chmod=755 a /b', lines: ['COPY --chown=app --chmod=755 a /b'], createdBy: 'COPY --chown=app --chmod=755 a /b' },
  // --chmod as written after expansion; --parents named first; --from and --link never shown.
  { name: 'COPY --link --chmod=$M --parents x/./y /d/', lines: ['ARG M=u+x', 'COPY --link --chmod=$M --parents x/./y /d/'], createdBy: 'COPY --parents --chmod=u+x x/./y /d/' },
  { name: 'COPY --from=busybox /bin/sh /sh', lines: ['COPY --from=busybox /bin/sh /sh'], createdBy: 'COPY /bin/sh /sh' },
  // runCommandString: the build args in scope come first as `|N k=v…` (both builders).
  { name: 'RUN echo hi with ARG V=x in scope', lines: ['ARG V=x', 'RUN echo hi'], createdBy: 'RUN |1 V=x /bin/sh -c echo hi' },
  { name: 'CMD ["nginx", "-g", "daemon off;"]', lines: ['CMD ["nginx", "-g", "daemon off;"]'], createdBy: 'CMD ["nginx" "-g" "daemon off;"]' },
  { name: 'CMD echo hi (shell form)', lines: ['CMD echo hi'], createdBy: 'CMD ["/bin/sh" "-c" "echo hi"]' },
  { name: 'ENTRYPOINT ["/init", "--"]', lines: ['ENTRYPOINT ["/init", "--"]'], createdBy: 'ENTRYPOINT ["/init" "--"]' },
  { name: 'SHELL ["/bin/bash", "-c"]', lines: ['SHELL ["/bin/bash", "-c"]'], createdBy: 'SHELL [/bin/bash -c]' },
  { name: 'VOLUME /data /x', lines: ['VOLUME /data /x'], createdBy: 'VOLUME [/data /x]' },
  { name: 'EXPOSE 80 53/udp', lines: ['EXPOSE 80 53/udp'], createdBy: 'EXPOSE [80/tcp 53/udp]' },
];

async function lastHistory(lines: string[]): Promise<string | undefined> {
  const got = await plan({ dockerfile: ['FROM busybox', ...lines].join('\n') });
  const last = got.stages[got.stages.length - 1]!.steps.at(-1)!;
  return last.kind === 'from' ? undefined : last.history.created_by;
}

describe('history text as docker writes it', () => {
  test.each(historyAgrees)('$name', async (row) => {
    expect(await lastHistory(row.lines)).toBe(row.createdBy);
  });
});

// ---- rows where strata differs from docker ------------------------------------------------

describe('COPY --chmod as BuildKit reads it', () => {
  // BuildKit expands --chmod like --chown (instructions/commands.go CopyCommand.Expand).
  test('COPY --chmod=$MODE with ARG MODE=640 gives mode 0640', async () => {
    const got = await plan({ dockerfile: 'FROM busybox\nARG MODE=640\nCOPY --chmod=$MODE a /a\n' });
    expect(got.stages[0]!.steps[2]).toMatchObject({ kind: 'copy', chmod: 0o640 });
  });

  // BuildKit parses --chmod with strconv.ParseUint(v, 8, 32) and accepts any octal up to 07777.
  test('COPY --chmod=7 a /a gives mode 07', async () => {
    const got = await plan({ dockerfile: 'FROM busybox\nCOPY --chmod=7 a /a\n' });
    expect(got.stages[0]!.steps[1]).toMatchObject({ kind: 'copy', chmod: 0o7 });
  });

  test.each([
    ['7777', 0o7777],
    ['00644', 0o644],
    ['u+x,g-w', 'u+x,g-w'],
    ['a=rX', 'a=rX'],
    ['+x', '+x'],
    ['g=u', 'g=u'],
    ['go-rwxst,u=rw', 'go-rwxst,u=rw'],
  ])('COPY --chmod=%s is kept as %p', async (flag, want) => {
    const got = await plan({ dockerfile: `FROM busybox\nCOPY --chmod=${flag} a /a\n` });
    expect(got.stages[0]!.steps[1]).toMatchObject({ kind: 'copy', chmod: want });
  });
});

describe('differs from docker', () => {
  // BuildKit splits EXPOSE words after expansion (shlex.ProcessWords, convert_expose.go).
  test('EXPOSE $PORTS with ENV PORTS="80 443" exposes two ports', async () => {
    const got = await plan({ dockerfile: 'FROM busybox\nENV PORTS="80 443"\nEXPOSE $PORTS\n' });
    expect(got.stages[0]!.steps[2]).toMatchObject({ patch: { ExposedPorts: { '80/tcp': {}, '443/tcp': {} } } });
  });

  // docker never warns about its predefined proxy args (builtinAllowedBuildArgs).
  test('--build-arg HTTP_PROXY=… unused: no warning', async () => {
    const got = await plan({ dockerfile: 'FROM busybox\n', buildArgs: { HTTP_PROXY: 'http://proxy:3128' } });
    expect(got.warnings).toEqual([]);
  });
});

describe('platform', () => {
  test('FROM --platform=$BUILDPLATFORM and ARG TARGETARCH in a stage give the host platform', async () => {
    const got = await plan({ dockerfile: 'FROM --platform=$BUILDPLATFORM busybox\nARG TARGETARCH\nRUN echo $TARGETARCH\n' });
    const run = got.stages[0]!.steps[2]!;
    expect(run).toMatchObject({ kind: 'run', env: expect.arrayContaining([`TARGETARCH=${process.arch === 'x64' ? 'amd64' : process.arch}`]) });
  });
  test('TARGETOS is not in a stage that does not declare it', async () => {
    const got = await plan({ dockerfile: 'FROM busybox\nRUN echo $TARGETOS\n' });
    expect((got.stages[0]!.steps[1] as { env: string[] }).env.some((e) => e.startsWith('TARGETOS='))).toBe(false);
  });
  test('FROM --platform for another architecture is a clear error', async () => {
    await expect(plan({ dockerfile: 'FROM --platform=linux/s390x busybox\n' })).rejects.toThrow('strata builds for linux/');
  });
  test('the proxy args reach RUN without ARG and stay out of its history', async () => {
    const got = await plan({ dockerfile: 'FROM busybox\nRUN true\n', buildArgs: { HTTP_PROXY: 'http://proxy:3128' } });
    const run = got.stages[0]!.steps[1] as { env: string[]; history: { created_by: string } };
    expect(run.env).toContain('HTTP_PROXY=http://proxy:3128');
    expect(run.history.created_by).toBe('RUN /bin/sh -c true');
  });
});

// ---- RUN extensions: heredocs and --mount ---------------------------------------------------

async function lastStep(lines: string[]): Promise<Step> {
  const got = await plan({ dockerfile: ['FROM busybox AS base', ...lines].join('\n') });
  return got.stages[got.stages.length - 1]!.steps.at(-1)!;
}

describe('RUN heredocs and mounts', () => {
  test('a shebang heredoc is mounted executable at /dev/pipes and run from there', async () => {
    const step = (await lastStep(['RUN <<-PY', '\t#!/usr/bin/env python3', '\tprint(1)', '\tPY'])) as RunStep;
    expect(step.args).toEqual(['/bin/sh', '-c', '/dev/pipes/PY']);
    expect(step.mounts).toEqual([{ type: 'inline', target: '/dev/pipes', files: [{ name: 'PY', content: '#!/usr/bin/env python3\nprint(1)\n', mode: 0o755 }] }]);
  });

  test('COPY heredoc bodies are expanded unless the delimiter is quoted', async () => {
    const step = (await lastStep(['ARG V=x', 'COPY <<A <<"B" /d/', '$V "q" \\$V', 'A', '$V', 'B'])) as CopyStep;
    expect(step.inline).toEqual([
      { name: 'A', content: 'x "q" $V\n' },
      { name: 'B', content: '$V\n' },
    ]);
    expect(step.sources).toEqual([]);
  });

  test('mount options get BuildKit defaults, expanded values and a dependency on the stage they name', async () => {
    const got = await plan({
      dockerfile: [
        'FROM busybox AS tools',
        'FROM busybox',
        'ARG ID=deps',
        'WORKDIR /src',
        'RUN --mount=type=cache,id=$ID,target=cache,sharing=locked --mount=from=tools,target=/t --mount=type=secret,id=tok --mount=type=tmpfs,target=/tmp,size=64m true',
      ].join('\n'),
    });
    const stage = got.stages[1]!;
    expect(stage.dependsOn).toEqual([0]);
    expect((stage.steps.at(-1) as RunStep).mounts).toEqual([
      { type: 'cache', target: '/src/cache', id: 'deps', sharing: 'locked', from: undefined, source: '/', mode: 0o755, uid: 0, gid: 0, readonly: false },
      { type: 'bind', target: '/t', from: { kind: 'stage', stage: 0 }, source: '/', readwrite: false },
      { type: 'secret', id: 'tok', target: '/run/secrets/tok', env: undefined, required: false, mode: 0o400, uid: 0, gid: 0 },
      { type: 'tmpfs', target: '/tmp', size: 64 * 1024 * 1024 },
    ]);
  });

  test('--target keeps a stage that only a mount needs, and resolves an image named by from=', async () => {
    const registry = fakeRegistry();
    const got = await plan(
      {
        dockerfile: ['FROM busybox AS tools', 'FROM busybox AS app', 'RUN --mount=from=tools,target=/t --mount=from=alpine,target=/a true', 'FROM busybox AS other'].join('\n'),
        target: 'app',
      },
      registry,
    );
    expect(got.stages.map((s) => s.index)).toEqual([0, 1]);
    expect(registry.calls).toContain('alpine');
    expect(((got.stages[1]!.steps.at(-1) as RunStep).mounts![1] as { from: unknown }).from).toEqual({ kind: 'image', ref: 'alpine', manifestDigest: sha256('manifest alpine') });
  });

  test.each([
    ['RUN --mount=type=ssh true', 'type=ssh is not supported'],
    ['RUN --mount=type=cache true', 'target is required'],
    ['RUN --mount=type=bind,target=/x,colour=red true', 'unknown option "colour" for type=bind'],
    ['RUN --mount=type=cache,target=/x,mode=999 true', 'mode must be an octal mode'],
    ['RUN --security=insecure true', '--security=insecure is not supported'],
    ['RUN --device=/dev/fuse true', 'flag --device is not supported yet'],
    ['RUN --mnt=type=cache,target=/x true', 'RUN: unknown flag --mnt'],
    ['COPY --frm=x a /b', 'COPY: unknown flag --frm'],
    ['ADD --from=x a /b', 'ADD: unknown flag --from'],
  ])('%s fails: %s', async (line, message) => {
    const err = await plan({ dockerfile: ['FROM busybox', line].join('\n') }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(DockerfileError);
    expect(err!.message).toContain('Dockerfile:2: ');
    expect(err!.message).toContain(message);
  });
});

// ---- build --label ---------------------------------------------------------------------------

describe('build --label', () => {
  const labelled = (dockerfile: string, labels: Record<string, string>, target?: string) =>
    planDockerfile(parseDockerfile(dockerfile), { buildArgs: {}, target, labels, resolveImage: fakeRegistry().resolveImage });

  // dockerd 20.10's classic builder: a LABEL step per label, sorted by key, counted in
  // `Step N/M`, after the target stage's last instruction; values as given, unexpanded.
  test('a LABEL step per label, sorted by key, after the target stage, values unexpanded', async () => {
    const p = await labelled('FROM a AS one\nLABEL x=1\nFROM a AS two\nENV B=2\n', { 'k b': 'a b"$c', a: '1' }, 'one');
    expect(p.totalSteps).toBe(4);
    const steps = p.stages.find((s) => s.index === p.target)!.steps;
    expect(steps.slice(2).map((s) => [s.number, s.text, (s as ConfigStep).history.created_by, (s as ConfigStep).patch])).toEqual([
      [3, 'LABEL a=1', 'LABEL a=1', { Labels: { x: '1', a: '1' } }],
      [4, 'LABEL k b=a b"$c', 'LABEL k b=a b"$c', { Labels: { x: '1', a: '1', 'k b': 'a b"$c' } }],
    ]);
  });

  test('a label without a name is refused', async () => {
    await expect(labelled('FROM a\n', { '': 'x' })).rejects.toThrow(/--label "": a label needs a name/);
  });
});
