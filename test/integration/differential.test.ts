// The differential suite: every case under test/fixtures/differential/ is built by strata and
// by dockerd's classic builder (DOCKER_BUILDKIT=0) in this run, and the results compared as a
// user sees them: the container filesystem, the config fields users rely on, the history.
//
// A case is a directory: the build context with its Dockerfile, and optionally case.json
// (not part of the context):
//   args         flags given to both builders (--build-arg, --target, -f); the value of -f
//                is a path inside the case directory
//   env          environment variables both builders' CLIs get (for a bare `--build-arg K`)
//   classic      the Dockerfile (in the context) docker builds instead, for BuildKit-only
//                syntax (--chmod, heredocs, RUN --mount…): the same result written the
//                classic way; its history then differs, so such a case lists "history"
//   fails        both builders must fail; strata's error must contain this text
//   differences  aspects not compared ("history", "config:<Field>", "filesystem"), each one a
//                deliberate difference listed in docs/compatibility.md under the case's name
//   mkdir        directories made in the copied context (git keeps no empty directories)
//   link         {"b": "a"}: b becomes a hardlink of a in the copied context (git keeps no
//                hardlinks; applied after mkdir, before chmod)
//   chmod        {"path": "0600"}: modes set in the copied context, since git keeps only +x
//                (applied after mkdir, so they may name the new directories)
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { REPO_ROOT, strata } from '../helpers/cli.js';
import {
  classicBuild,
  classicBuildRaw,
  comparedConfig,
  filesystemListing,
  historyRows,
  normalizeClassicHistory,
  normalizeStrataHistory,
  removeClassicLeftovers,
  strataBuildIntoDocker,
} from '../helpers/differential.js';
import { dockerRmi } from '../helpers/docker.js';

interface CaseFile {
  args?: string[];
  env?: Record<string, string>;
  classic?: string;
  fails?: string;
  differences?: string[];
  mkdir?: string[];
  link?: Record<string, string>;
  chmod?: Record<string, string>;
}

const CASES_DIR = path.join(REPO_ROOT, 'test', 'fixtures', 'differential');
const COMPATIBILITY = path.join(REPO_ROOT, 'docs', 'compatibility.md');

const cases = (await fs.readdir(CASES_DIR, { withFileTypes: true }))
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

const images: string[] = [];
afterAll(async () => {
  if (images.length) await dockerRmi(...images);
  await removeClassicLeftovers();
});

async function readCase(name: string): Promise<CaseFile> {
  const text = await fs.readFile(path.join(CASES_DIR, name, 'case.json'), 'utf8').catch(() => '{}');
  return JSON.parse(text) as CaseFile;
}

/** The case's context in a scratch dir (git keeps neither owners nor most modes stable). */
async function contextOf(name: string, c: CaseFile): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `strata-diff-${name}-`));
  await execa('cp', ['-a', `${path.join(CASES_DIR, name)}/.`, dir]);
  await fs.rm(path.join(dir, 'case.json'), { force: true });
  for (const d of c.mkdir ?? []) await fs.mkdir(path.join(dir, d), { recursive: true });
  for (const [name, target] of Object.entries(c.link ?? {})) {
    await fs.rm(path.join(dir, name), { force: true });
    await fs.link(path.join(dir, target), path.join(dir, name));
  }
  for (const [p, mode] of Object.entries(c.chmod ?? {})) await fs.chmod(path.join(dir, p), parseInt(mode, 8));
  return dir;
}

/** The case's flags, with the Dockerfile named by -f found in the copied context. */
function argsIn(ctx: string, args: string[]): string[] {
  return args.map((a, i) => (args[i - 1] === '-f' || args[i - 1] === '--file' ? path.join(ctx, a) : a));
}

test('there are differential cases, and every listed difference is documented', async () => {
  expect(cases.length).toBeGreaterThan(0);
  const doc = await fs.readFile(COMPATIBILITY, 'utf8');
  const undocumented: string[] = [];
  for (const name of cases) {
    if ((await readCase(name)).differences?.length && !doc.includes(`\`${name}\``)) undocumented.push(name);
  }
  expect(undocumented).toEqual([]);
});

test.each(cases)('%s builds as docker builds it', async (name) => {
  const c = await readCase(name);
  const ctx = await contextOf(name, c);
  try {
    const args = argsIn(ctx, c.args ?? []);
    const env = c.env ?? {};
    if (c.fails !== undefined) {
      const r = await strata(['build', ...args, ctx], { env });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(c.fails);
      const classicArgs = c.classic ? [...args, '-f', path.join(ctx, c.classic)] : args;
      const classic = await classicBuildRaw(ctx, classicArgs, env);
      expect(classic.exitCode).not.toBe(0);
      return;
    }
    const ours = await strataBuildIntoDocker(ctx, args, env);
    images.push(ours);
    const theirs = await classicBuild(ctx, c.classic ? [...args, '-f', path.join(ctx, c.classic)] : args, env);
    images.push(theirs);
    const skip = new Set(c.differences ?? []);

    if (!skip.has('filesystem')) {
      const [mine, docker] = await Promise.all([filesystemListing(ours), filesystemListing(theirs)]);
      expect(mine).toEqual(docker);
    }

    const [mine, docker] = await Promise.all([comparedConfig(ours), comparedConfig(theirs)]);
    for (const field of Object.keys(docker)) {
      if (skip.has(`config:${field}`)) continue;
      expect({ [field]: mine[field] }).toEqual({ [field]: docker[field] });
    }

    if (!skip.has('history')) {
      const strataRows = (await historyRows(ours)).map((r) => ({ ...r, createdBy: normalizeStrataHistory(r.createdBy) }));
      const classicRows = (await historyRows(theirs)).map((r) => ({ ...r, createdBy: normalizeClassicHistory(r.createdBy) }));
      expect(strataRows).toEqual(classicRows);
    }
  } finally {
    await fs.rm(ctx, { recursive: true, force: true });
  }
});
