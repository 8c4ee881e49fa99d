// A Temporal server as a cluster runs it, for tests: the server v1.29.1 (built by
// scripts/setup.sh) on a private PostgreSQL, both on free loopback ports under one temp dir,
// with the `default` namespace and strata's search attributes. The recipe for running strata
// on such a server by hand too (docs/store.md).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time.js';
import proto from '@temporalio/proto';
import { execa } from 'execa';
import { BUILD_SEARCH_ATTRIBUTES } from '../../workflows/searchAttributes.js';
import { until } from './host.js';

export const TEMPORAL_SERVER_VERSION = 'v1.29.1';

export interface PostgresTemporal {
  /** `127.0.0.1:PORT` of the frontend: the TEMPORAL_ADDRESS of strata's CLI and workers. */
  address: string;
  /** One SQL query's rows (`|` between columns) in database `temporal` or `temporal_visibility`. */
  sql(db: 'temporal' | 'temporal_visibility', query: string): Promise<string[]>;
  /** The last lines the server logged. */
  logTail(lines?: number): Promise<string>;
  /** Stops the server and PostgreSQL and removes the temp dir. */
  stop(): Promise<void>;
}

/** TEMPORAL_SERVER_DIR, else where setup.sh builds it: `server`, `sql` and `schema/postgresql/v12`. */
export function temporalServerDir(): string {
  if (process.env.TEMPORAL_SERVER_DIR) return process.env.TEMPORAL_SERVER_DIR;
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(cache, 'strata', `temporal-server-${TEMPORAL_SERVER_VERSION}`);
}

/** Debian's newest PostgreSQL server binaries (initdb, pg_ctl, psql). */
async function postgresBin(): Promise<string> {
  const root = '/usr/lib/postgresql';
  const versions = (await fs.readdir(root).catch(() => [] as string[])).filter((v) => existsSync(path.join(root, v, 'bin', 'initdb')));
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error(`temporal on postgres: no PostgreSQL under ${root}; run \`bash scripts/setup.sh\``);
  return path.join(root, versions[0]!, 'bin');
}

/** PostgreSQL refuses to run as root: as root, its commands run as the `postgres` user Debian's package makes. */
function asDbUser(cmd: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

/** The server's configuration: both stores on PostgreSQL, every port on 127.0.0.1, no TLS. */
function serverConfig(pgPort: number, ports: Record<'frontend' | 'history' | 'matching' | 'worker', [number, number]>): string {
  const store = (db: string, conns: number) =>
    [
      `      sql:`,
      `        pluginName: postgres12`,
      `        databaseName: ${db}`,
      `        connectAddr: "127.0.0.1:${pgPort}"`,
      `        connectProtocol: tcp`,
      `        user: temporal`,
      `        password: temporal`,
      `        maxConns: ${conns}`,
      `        maxIdleConns: ${conns}`,
    ].join('\n');
  const services = Object.entries(ports).map(([name, [grpc, membership]]) => `  ${name}:\n    rpc: { grpcPort: ${grpc}, membershipPort: ${membership}, bindOnIP: 127.0.0.1 }`);
  return [
    'log:',
    '  stdout: true',
    '  level: info',
    'persistence:',
    '  defaultStore: default',
    '  visibilityStore: visibility',
    // Shards are the unit of history's parallelism; a test needs few.
    '  numHistoryShards: 4',
    '  datastores:',
    '    default:',
    store('temporal', 10),
    '    visibility:',
    store('temporal_visibility', 4),
    'global:',
    '  membership:',
    '    maxJoinDuration: 30s',
    '    broadcastAddress: 127.0.0.1',
    'services:',
    ...services,
    'clusterMetadata:',
    '  enableGlobalNamespace: false',
    '  failoverVersionIncrement: 10',
    '  masterClusterName: active',
    '  currentClusterName: active',
    '  clusterInformation:',
    '    active:',
    '      enabled: true',
    '      initialFailoverVersion: 1',
    '      rpcName: frontend',
    `      rpcAddress: "127.0.0.1:${ports.frontend[0]}"`,
    'dcRedirectionPolicy:',
    '  policy: noop',
    '',
  ].join('\n');
}

/**
 * Free loopback ports below 32768: the PostgreSQL schema keeps a service's port in a smallint
 * (cluster_membership.rpc_port), so the kernel's ephemeral ports (from 32768) make the server
 * die at start ("out of range for type smallint").
 */
async function lowFreePorts(n: number): Promise<number[]> {
  const free = (port: number) =>
    new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
  const out: number[] = [];
  for (let i = 0; out.length < n && i < 1000; i++) {
    const port = 10000 + Math.floor(Math.random() * 22000);
    if (!out.includes(port) && (await free(port))) out.push(port);
  }
  if (out.length < n) throw new Error(`no ${n} free loopback ports below 32000`);
  return out;
}

async function stopChild(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts PostgreSQL and the Temporal server on it, ready for strata: a few seconds. On
 * failure, stops what it started and throws with the server's log tail.
 */
export async function startPostgresTemporal(): Promise<PostgresTemporal> {
  const serverDir = temporalServerDir();
  for (const f of ['server', 'sql', 'schema/postgresql/v12']) {
    if (!existsSync(path.join(serverDir, f))) throw new Error(`temporal on postgres: no ${f} in ${serverDir}; run \`bash scripts/setup.sh\``);
  }
  const bin = await postgresBin();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-pg-temporal-'));
  // The database's files (and its socket) belong to the user it runs as, who may pass through
  // the temp dir but not list it.
  const data = path.join(dir, 'pg');
  await fs.mkdir(data, { mode: 0o700 });
  if (process.getuid?.() === 0) {
    await fs.chmod(dir, 0o711);
    await execa('chown', ['postgres:postgres', data]);
  }
  const pgPort = (await lowFreePorts(1))[0]!;
  const pgLog = path.join(data, 'postgres.log');
  const serverLog = path.join(dir, 'server.log');
  let server: ChildProcess | undefined;
  let pgStarted = false;

  const pg = (cmd: string, args: string[], timeout = 60_000) => execa(...asDbUser(path.join(bin, cmd), args), { timeout, cwd: data });
  const logTail = async (lines = 40) => {
    const tail = async (f: string) => (await fs.readFile(f, 'utf8').catch(() => '')).split('\n').slice(-lines).join('\n');
    return `temporal server log (${serverLog}):\n${await tail(serverLog)}\npostgres log:\n${await tail(pgLog)}`;
  };
  const stop = async () => {
    if (server) await stopChild(server, 20_000);
    if (pgStarted) {
      const r = await pg('pg_ctl', ['-D', path.join(data, 'db'), '-m', 'fast', '-w', '-t', '30', 'stop']).catch((e: Error) => e);
      if (r instanceof Error) {
        // A postmaster that would not stop in time: kill it by its pid file.
        const pid = Number((await fs.readFile(path.join(data, 'db', 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0]);
        if (pid > 0) process.kill(pid, 'SIGKILL');
      }
    }
    await fs.rm(dir, { recursive: true, force: true });
  };

  try {
    // Trust on loopback only: the password in the config is never checked. Durability is off
    // (fsync and friends): a test's database need not survive a crash of the machine.
    await pg('initdb', ['-D', path.join(data, 'db'), '-U', 'temporal', '--auth=trust', '-E', 'UTF8', '--no-sync']);
    const options = ['-h 127.0.0.1', `-p ${pgPort}`, `-k ${data}`, '-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off'].join(' ');
    pgStarted = true;
    await pg('pg_ctl', ['-D', path.join(data, 'db'), '-l', pgLog, '-w', '-t', '60', '-o', options, 'start']);

    const sqlTool = (db: string, args: string[]) =>
      execa(path.join(serverDir, 'sql'), ['--ep', '127.0.0.1', '-p', String(pgPort), '-u', 'temporal', '--pw', 'temporal', '--pl', 'postgres12', '--db', db, ...args], {
        timeout: 60_000,
      });
    for (const [db, schema] of [
      ['temporal', 'temporal'],
      ['temporal_visibility', 'visibility'],
    ] as const) {
      await sqlTool(db, ['create']);
      await sqlTool(db, ['setup-schema', '-v', '0.0']);
      await sqlTool(db, ['update-schema', '-d', path.join(serverDir, 'schema', 'postgresql', 'v12', schema, 'versioned')]);
    }

    const p = await lowFreePorts(8);
    const ports = { frontend: [p[0]!, p[1]!], history: [p[2]!, p[3]!], matching: [p[4]!, p[5]!], worker: [p[6]!, p[7]!] } as Record<
      'frontend' | 'history' | 'matching' | 'worker',
      [number, number]
    >;
    await fs.mkdir(path.join(dir, 'config'));
    await fs.writeFile(path.join(dir, 'config', 'strata.yaml'), serverConfig(pgPort, ports));
    const log = await fs.open(serverLog, 'a');
    // The config is <root>/<config dir>/<env>.yaml; no authorizer: plain loopback, as the dev server.
    server = spawn(path.join(serverDir, 'server'), ['--root', dir, '--config', 'config', '--env', 'strata', '--allow-no-auth', 'start'], {
      cwd: dir,
      stdio: ['ignore', log.fd, log.fd],
    });
    await log.close();
    const address = `127.0.0.1:${ports.frontend[0]}`;
    await readyForStrata(address, server);
    return {
      address,
      async sql(db, query) {
        const r = await pg('psql', ['-h', '127.0.0.1', '-p', String(pgPort), '-U', 'temporal', '-d', db, '-At', '-v', 'ON_ERROR_STOP=1', '-c', query], 30_000);
        return r.stdout.split('\n').filter((l) => l !== '');
      },
      logTail,
      stop,
    };
  } catch (err) {
    const tail = await logTail();
    await stop();
    throw new Error(`temporal on postgres: ${(err as Error).message}\n${tail}`, { cause: err });
  }
}

/** Waits for the frontend, then makes the `default` namespace and strata's search attributes (the dev server starts with both). */
async function readyForStrata(address: string, server: ChildProcess): Promise<void> {
  const connection = await until(
    'the Temporal frontend',
    async () => {
      if (server.exitCode !== null || server.signalCode !== null) throw new Error(`the server exited (${server.exitCode ?? server.signalCode})`);
      const c = await Connection.connect({ address, connectTimeout: 1000 }).catch(() => undefined);
      if (!c) return undefined;
      const serving = await c.healthService
        .check({})
        .then((r) => r.status === 1)
        .catch(() => false);
      if (serving) return c;
      await c.close();
      return undefined;
    },
    60_000,
  );
  try {
    const namespace = 'default';
    await connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') });
    // The frontend knows a new namespace once its registry refreshes (every 2 s by default).
    await until('the default namespace', () => connection.workflowService.describeNamespace({ namespace }).catch(() => undefined), 30_000);
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(BUILD_SEARCH_ATTRIBUTES.map((k) => [k.name, proto.temporal.api.enums.v1.IndexedValueType[`INDEXED_VALUE_TYPE_${k.type}`]])),
    });
    await until(
      'the search attributes',
      async () => {
        const known = await connection.operatorService.listSearchAttributes({ namespace });
        return BUILD_SEARCH_ATTRIBUTES.every((k) => k.name in (known.customAttributes ?? {})) ? true : undefined;
      },
      30_000,
    );
  } finally {
    await connection.close();
  }
}
