// docker-compose.yml: the file docker-compose itself reads (`config` validates and resolves
// it) holds Temporal on PostgreSQL, its Web UI, a registry, and privileged strata workers that
// share one store volume with the CLI service. Pulling the images is impossible here, so
// nothing is started; the worker's Dockerfile is checked with strata's own parser.
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { parseDockerfile } from '../../engine/dockerfile/parse.js';
import { REPO_ROOT } from '../helpers/cli.js';

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  privileged?: boolean;
  environment?: Record<string, string>;
  volumes?: (string | { type: string; source: string; target: string })[];
  profiles?: string[];
  entrypoint?: string[];
  command?: string[];
  networks?: Record<string, unknown> | string[];
  network_mode?: string;
}

interface ComposeConfig {
  services: Record<string, Service>;
  networks?: Record<string, { ipam?: { config?: { subnet?: string }[] } } | null>;
  volumes?: Record<string, unknown>;
}

/** `docker-compose`, else `docker compose` (the plugin). */
async function composeCommand(): Promise<string[]> {
  if ((await execa('docker-compose', ['version'], { reject: false })).exitCode === 0) return ['docker-compose'];
  if ((await execa('docker', ['compose', 'version'], { reject: false })).exitCode === 0) return ['docker', 'compose'];
  throw new Error('neither docker-compose nor `docker compose` is installed (bash scripts/setup.sh installs docker-compose)');
}

/** What docker-compose makes of the file, as JSON (its YAML read by Python's yaml, which docker-compose needs anyway). */
async function resolvedConfig(): Promise<ComposeConfig> {
  const [cmd, ...pre] = await composeCommand();
  const r = await execa(cmd!, [...pre, '-f', path.join(REPO_ROOT, 'docker-compose.yml'), 'config'], { cwd: REPO_ROOT });
  const json = await execa('python3', ['-c', 'import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], { input: r.stdout });
  return JSON.parse(json.stdout) as ComposeConfig;
}

/** Named volumes a service mounts: target → volume name. */
function namedMounts(s: Service, config: ComposeConfig): Map<string, string> {
  const out = new Map<string, string>();
  for (const v of s.volumes ?? []) {
    const [source, target] = typeof v === 'string' ? v.split(':') : [v.source, v.target];
    if (source && target && config.volumes && source in config.volumes) out.set(target, source);
  }
  return out;
}

let config: ComposeConfig;
beforeAll(async () => {
  config = await resolvedConfig();
});

test('Temporal runs on PostgreSQL, with its Web UI and a registry', () => {
  const { temporal, postgresql, registry } = config.services;
  const ui = config.services['temporal-ui'];
  expect(postgresql?.image).toMatch(/^postgres:/);
  expect(temporal?.image).toMatch(/^temporalio\/auto-setup:/);
  expect(temporal?.environment?.DB).toBe('postgres12');
  expect(temporal?.environment?.POSTGRES_SEEDS).toBe('postgresql');
  expect(ui?.image).toMatch(/^temporalio\/ui:/);
  expect(ui?.environment?.TEMPORAL_ADDRESS).toBe('temporal:7233');
  expect(registry?.image).toBe('registry:2');
});

test('workers are privileged, talk to the compose Temporal, and share no store volume: the compose registry is their remote store', () => {
  const worker = config.services['strata-worker']!;
  const cli = config.services.strata!;
  expect(worker.privileged).toBe(true);
  expect(worker.command).toEqual(['worker']);
  expect(cli.entrypoint).toEqual(['strata']);
  expect(cli.profiles).toEqual(['cli']);
  for (const s of [worker, cli]) {
    expect(s.environment?.TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(s.build?.dockerfile).toBe('docker/strata-worker.Dockerfile');
  }
  const home = worker.environment!.STRATA_HOME!;
  for (const s of [worker, cli]) {
    // A store of each container's own (an anonymous volume: one per worker of --scale).
    expect(s.environment?.STRATA_HOME).toBe(home);
    expect(namedMounts(s, config).get(home)).toBeUndefined();
    expect(s.volumes?.some((v) => (typeof v === 'string' ? v === home : v.target === home && !v.source))).toBe(true);
    // The remote store: a repository of the compose registry, on the workers' network, over http.
    const remote = s.environment?.STRATA_REMOTE ?? '';
    expect(remote).toMatch(/^registry:5000\/[a-z0-9-]+$/);
    expect(s.environment?.STRATA_INSECURE_REGISTRIES?.split(',')).toContain('registry:5000');
    expect(networksOf(config.services.registry!)).toEqual(expect.arrayContaining(networksOf(s)));
  }
});

test('the worker image builds strata from this repository and runs `strata worker`', async () => {
  const file = path.join(REPO_ROOT, 'docker', 'strata-worker.Dockerfile');
  const df = parseDockerfile(await fs.readFile(file, 'utf8'), 'strata-worker.Dockerfile');
  const kinds = df.instructions.map((i) => i.kind);
  expect(kinds.filter((k) => k === 'FROM')).toHaveLength(2);
  // Every local COPY source is in the repository (the context is its root).
  for (const inst of df.instructions) {
    if (inst.kind !== 'COPY' || inst.flags.some((f) => f.name === 'from')) continue;
    for (const src of inst.sources) expect([src, existsSync(path.join(REPO_ROOT, src))]).toEqual([src, true]);
  }
  const runs = df.instructions.filter((i) => i.kind === 'RUN').map((i) => i.text);
  expect(runs.some((t) => t.includes('npm run build'))).toBe(true);
  expect(runs.some((t) => /apt-get install .*\brunc\b/.test(t))).toBe(true);
  expect(df.instructions.map((i) => i.text)).toEqual(expect.arrayContaining(['ENTRYPOINT ["strata"]', 'CMD ["worker"]']));
});

/** The networks a service is on. */
function networksOf(s: Service): string[] {
  return Array.isArray(s.networks) ? s.networks : Object.keys(s.networks ?? {});
}

test("RUN steps cannot use Temporal: it demands client certificates, and the workers' network has neither its database nor the Web UI", () => {
  const { temporal, postgresql, strata: cli } = config.services;
  const worker = config.services['strata-worker']!;
  const ui = config.services['temporal-ui']!;
  expect(temporal?.environment?.TEMPORAL_TLS_REQUIRE_CLIENT_AUTH).toBe('true');
  for (const s of [worker, cli!, ui]) {
    expect(s.environment?.TEMPORAL_TLS_CERT).toBe('/certs/client.pem');
    expect(s.environment?.TEMPORAL_TLS_KEY).toBe('/certs/client.key');
    expect(s.environment?.TEMPORAL_TLS_CA).toBe('/certs/ca.pem');
    expect(namedMounts(s, config).get('/certs')).toBe('temporal-certs');
  }
  const builds = networksOf(worker);
  expect(builds).toEqual(networksOf(cli!));
  expect(networksOf(temporal!).some((n) => builds.includes(n))).toBe(true);
  expect(networksOf(postgresql!).some((n) => builds.includes(n))).toBe(false);
  expect(networksOf(ui).some((n) => builds.includes(n))).toBe(false);
  // The certificates are made by the script the tests use (test/integration/tls.test.ts).
  expect(config.services['temporal-certs']?.entrypoint).toEqual(['sh', '/opt/strata/docker/temporal-certs.sh', '/certs']);
});

test("RUN steps cannot reach the workers' network: the worker denies its subnet to them", () => {
  const worker = config.services['strata-worker']!;
  const [builds] = networksOf(worker);
  const subnets = (config.networks?.[builds!]?.ipam?.config ?? []).map((c) => c.subnet);
  expect(subnets).toHaveLength(1);
  expect(worker.environment?.STRATA_RUN_DENY_NETWORKS?.split(',')).toContain(subnets[0]);
});

test('a worker writes outputs only under /out, which is ./out on the host', () => {
  const worker = config.services['strata-worker']!;
  expect(worker.environment?.STRATA_OUTPUT_DIR).toBe('/out');
  expect(worker.environment?.STRATA_ALLOW_PUSH).toBeUndefined();
  expect(worker.volumes?.some((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}`).match(/\/out(:rw)?$/))).toBe(true);
});
