// Hostile Dockerfiles end in a clear DockerfileError naming the line, with bounded time and
// memory: each case runs in a child node with a 256 MB heap, where the unbounded planner died
// of heap exhaustion (ARG doubling), ran for minutes (20,000 ONBUILD lines), overflowed the
// stack, or made plans Temporal cannot carry.
import { sha256 } from '../../engine/digest.js';
import { DockerfileError } from '../../engine/errors.js';
import { parseDockerfile } from '../../engine/dockerfile/parse.js';
import type { ImageConfigFile } from '../../engine/image/types.js';
import { MAX_INSTRUCTIONS, MAX_ONBUILD_TRIGGERS, MAX_PLAN_BYTES, MAX_STAGES, buildArgsProblem } from '../../engine/dockerfile/limits.js';
import { planDockerfile, type ResolvedImage } from '../../engine/plan/planner.js';
import { OUTCOME_HELPER, lastOutcome, runBounded } from '../helpers/bounded.js';

/** Plans `dockerfile` in a child with a 256 MB heap; returns how it ended. */
async function planBounded(dockerfile: string, buildArgs: Record<string, string> = {}) {
  const r = await runBounded(`
    const { parseDockerfile } = await import(DIST + '/engine/dockerfile/parse.js');
    const { planDockerfile } = await import(DIST + '/engine/plan/planner.js');
    ${OUTCOME_HELPER}
    const text = ${JSON.stringify(dockerfile)};
    await outcome((async () => planDockerfile(parseDockerfile(text), {
      buildArgs: ${JSON.stringify(buildArgs)},
      resolveImage: async (ref) => { throw new Error('no image ' + ref); },
    }))());
  `);
  return lastOutcome(r);
}

const doubling = (n: number) => {
  let text = 'FROM scratch\nARG A0=xx\n';
  for (let i = 1; i <= n; i++) text += `ARG A${i}=$A${i - 1}$A${i - 1}\n`;
  return text + 'RUN true\n';
};

describe('bounded planning (child node, 256 MB heap)', () => {
  test('ARG doubling 26 times fails at the line whose value outgrows the limit', async () => {
    const o = await planBounded(doubling(26));
    expect(o).toMatchObject({ ok: false, name: 'DockerfileError', code: 'DOCKERFILE_INVALID' });
    // A17 is 2 × 2^17 characters: line 20 (FROM, A0, A1 … A17).
    expect(o.message).toMatch(/^Dockerfile:20: expand "\$A17\$A17": .*the expansion is longer than 262144 characters$/);
  });

  test('ARG doubling within the value limit still cannot make a plan Temporal would refuse', async () => {
    let text = doubling(16);
    for (let i = 0; i < 20; i++) text += 'RUN echo $A16\n';
    const o = await planBounded(text);
    expect(o).toMatchObject({ ok: false, name: 'DockerfileError' });
    expect(o.message).toMatch(new RegExp(`^Dockerfile:\\d+: the build plan grows past ${MAX_PLAN_BYTES} bytes here`));
  });

  test('20,000 ONBUILD lines end at the instruction limit', async () => {
    const o = await planBounded('FROM scratch\n' + 'ONBUILD RUN true\n'.repeat(20_000));
    expect(o).toMatchObject({ ok: false, name: 'DockerfileError' });
    expect(o.message).toBe(`Dockerfile:${MAX_INSTRUCTIONS + 1}: more than ${MAX_INSTRUCTIONS} instructions`);
  });

  test('ONBUILD lines under the instruction limit end at the plan limit (each step lists all triggers so far)', async () => {
    const o = await planBounded('FROM scratch\n' + 'ONBUILD RUN true\n'.repeat(MAX_INSTRUCTIONS - 1));
    expect(o).toMatchObject({ ok: false, name: 'DockerfileError' });
    expect(o.message).toMatch(/^Dockerfile:\d+: the build plan grows past/);
  });

  test('20,000 chained ONBUILDs on one line: the chaining error, not a stack overflow', async () => {
    const o = await planBounded('FROM scratch\n' + 'ONBUILD '.repeat(20_000) + 'RUN x\n');
    expect(o).toMatchObject({ ok: false, name: 'DockerfileError' });
    expect(o.message).toBe("Dockerfile:2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
  });

  test('100,000 instructions end at the limit', async () => {
    const o = await planBounded('FROM scratch\n' + 'ENV A=b\n'.repeat(100_000));
    expect(o.message).toBe(`Dockerfile:${MAX_INSTRUCTIONS + 1}: more than ${MAX_INSTRUCTIONS} instructions`);
  });

  test('a Dockerfile over 1 MiB is refused before it is read', async () => {
    const o = await planBounded('FROM scratch\n# ' + 'x'.repeat(1 << 20) + '\n');
    expect(o.message).toBe('Dockerfile:1: the Dockerfile is 1048592 bytes, more than the 1048576 strata reads');
  });
});

describe('limits in place', () => {
  test('more stages than the limit', () => {
    const text = 'FROM scratch\n'.repeat(MAX_STAGES + 1);
    expect(() => parseDockerfile(text)).toThrow(new DockerfileError({ file: 'Dockerfile', line: MAX_STAGES + 1 }, `more than ${MAX_STAGES} build stages`));
  });

  test('a base image with too many ONBUILD triggers', async () => {
    const config: ImageConfigFile = {
      architecture: 'amd64',
      os: 'linux',
      config: { OnBuild: Array.from({ length: MAX_ONBUILD_TRIGGERS + 1 }, () => 'RUN true') },
      rootfs: { type: 'layers', diff_ids: [] },
      history: [],
    };
    const resolveImage = async (ref: string): Promise<ResolvedImage> => ({ ref, manifestDigest: sha256('m'), configDigest: sha256('c'), config });
    await expect(planDockerfile(parseDockerfile('FROM base\nRUN true\n'), { buildArgs: {}, resolveImage })).rejects.toThrow(
      `Dockerfile:1: FROM base: the image has ${MAX_ONBUILD_TRIGGERS + 1} ONBUILD triggers, more than the ${MAX_ONBUILD_TRIGGERS} strata runs`,
    );
  });

  test.each([
    [{ A: 'x' }, undefined],
    [Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`A${i}`, ''])), '1001 build args, more than 1000'],
    [{ ['K'.repeat(257)]: 'v' }, 'is empty or longer than 256 characters'],
    [{ A: 'v'.repeat(128 * 1024 + 1) }, 'build arg A is longer than 131072 characters'],
    [Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`A${i}`, 'v'.repeat(120 * 1024)])), 'build args total'],
    [{ A: 1 }, 'build arg A is not a string'],
  ])('build args %#', (args, problem) => {
    const found = buildArgsProblem(args as Record<string, unknown>);
    if (problem === undefined) expect(found).toBeUndefined();
    else expect(found).toContain(problem);
  });
});
