// Which Temporal server strata talks to, and the embedded dev server's lifecycle: with
// TEMPORAL_ADDRESS unset and nothing answering on 127.0.0.1:7233, strata starts
// `temporal server start-dev` in the background with a SQLite file under $STRATA_HOME and
// reuses it afterwards.
import { spawn } from 'node:child_process';
import { existsSync, openSync, closeSync, promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Connection } from '@temporalio/client';
import { BUILD_SEARCH_ATTRIBUTES } from '../workflows/searchAttributes.js';
import { temporal, temporalProto as proto } from './temporalClient.js';
import { configuredTarget, connectionOptions, embeddedPort, type TemporalTarget } from './target.js';
import { TEMPORAL_CLI_VERSION } from './temporalVersion.js';

export { TEMPORAL_CLI_VERSION };
export { configuredTarget, connectionOptions, embeddedPort, tlsFromEnv, type TemporalTarget, type TemporalTls } from './target.js';

/** Where `npm run setup` installs the Temporal CLI (go install with GOBIN). */
export function cachedCliPath(): string {
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(cache, 'strata', `temporal-${TEMPORAL_CLI_VERSION}`, 'temporal');
}

/** TEMPORAL_CLI, else the cached build, else `temporal` on PATH. */
export function findTemporalCli(): string {
  if (process.env.TEMPORAL_CLI) return process.env.TEMPORAL_CLI;
  const cached = cachedCliPath();
  if (existsSync(cached)) return cached;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.join(dir, 'temporal');
    if (dir && existsSync(p)) return p;
  }
  throw new Error(`start temporal: the temporal CLI was not found at ${cached} or on PATH; run \`bash scripts/setup.sh\` or set TEMPORAL_CLI`);
}

export function isListening(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    sock.setTimeout(1000);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('timeout', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('error', () => resolve(false));
  });
}

/** True when the server answers and the namespace exists. */
async function isReady(target: TemporalTarget): Promise<boolean> {
  let conn: Connection | undefined;
  try {
    conn = await temporal.Connection.connect({ ...connectionOptions(target), connectTimeout: 2000 });
    await conn.workflowService.describeNamespace({ namespace: target.namespace });
    return true;
  } catch {
    return false;
  } finally {
    await conn?.close();
  }
}

interface ServerState {
  pid: number;
  port: number;
  uiPort: number;
  db: string;
  log: string;
  /** The search attributes it was started with (absent: a server an older strata started). */
  searchAttributes?: string[];
}

function serverDir(home: string): string {
  return path.join(home, 'temporal');
}

async function readState(home: string): Promise<ServerState | undefined> {
  try {
    return JSON.parse(await fs.readFile(path.join(serverDir(home), 'server.json'), 'utf8')) as ServerState;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Returns a ready server: TEMPORAL_ADDRESS's, or the embedded one, started when nothing
 * answers on its port. Starting takes a few seconds the first time.
 */
export async function ensureTemporal(home: string, log: (msg: string) => void = () => undefined): Promise<TemporalTarget> {
  const { target, connection } = await connectTemporal(home, log);
  await connection.close();
  return target;
}

/**
 * A connection to a ready server (see ensureTemporal), the one a command then uses: one
 * handshake and, for a server this store started with strata's search attributes, one call.
 */
export async function connectTemporal(home: string, log: (msg: string) => void = () => undefined): Promise<{ target: TemporalTarget; connection: Connection }> {
  const target = configuredTarget();
  if (!target.embedded) {
    const connection = await temporal.Connection.connect(connectionOptions(target));
    await registerSearchAttributes(connection, target, log);
    return { target, connection };
  }
  const port = embeddedPort();
  // A refused port is known at once; a gRPC connect to it would wait for its whole timeout.
  if (!(await isListening(port))) await startServer(home, log);
  const connection = await temporal.Connection.connect({ ...connectionOptions(target), connectTimeout: 30_000 });
  try {
    if (!(await namespaceReady(connection, target, 30_000))) {
      throw new Error(`connect temporal: something listens on 127.0.0.1:${port} but is not a ready Temporal server`);
    }
    const state = await readState(home);
    const known = state?.port === port ? (state.searchAttributes ?? []) : [];
    if (BUILD_SEARCH_ATTRIBUTES.some((k) => !known.includes(k.name))) await registerSearchAttributes(connection, target, log);
  } catch (err) {
    await connection.close();
    throw err;
  }
  return { target, connection };
}

/** True once the namespace answers (a server just started registers it a moment later). */
async function namespaceReady(connection: Connection, target: TemporalTarget, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await connection.workflowService.describeNamespace({ namespace: target.namespace });
      return true;
    } catch {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
}

/**
 * Registers the build search attributes the server lacks: a build's workflow sets them, and
 * a server that does not know one fails the workflow's tasks until it does. The embedded
 * server gets them at start; this covers a server strata did not start. Needs operator
 * rights: without them it only warns.
 */
export async function registerSearchAttributes(conn: Connection, target: TemporalTarget, log: (msg: string) => void = () => undefined): Promise<void> {
  try {
    const known = await conn.operatorService.listSearchAttributes({ namespace: target.namespace });
    const missing = BUILD_SEARCH_ATTRIBUTES.filter((k) => !(k.name in (known.customAttributes ?? {})));
    if (missing.length === 0) return;
    await conn.operatorService.addSearchAttributes({
      namespace: target.namespace,
      searchAttributes: Object.fromEntries(missing.map((k) => [k.name, proto.temporal.api.enums.v1.IndexedValueType[`INDEXED_VALUE_TYPE_${k.type}`]])),
    });
  } catch (err) {
    log(`warning: cannot register strata's search attributes on ${target.address}: ${(err as Error).message}`);
  }
}

/** `temporal server start-dev --search-attribute` names a type as CamelCase: KEYWORD_LIST → KeywordList. */
function cliAttributeType(type: string): string {
  return type.toLowerCase().replace(/(^|_)(\w)/g, (_, __, c: string) => c.toUpperCase());
}

/** Starts the embedded dev server in the background (detached: it outlives this process). */
export async function startServer(home: string, log: (msg: string) => void = () => undefined): Promise<ServerState> {
  const target = configuredTarget();
  const port = embeddedPort();
  const uiPort = port + 1000;
  const dir = serverDir(home);
  await fs.mkdir(dir, { recursive: true });
  const existing = await readState(home);
  if (existing && alive(existing.pid) && (await isListening(existing.port))) return existing;
  const cli = findTemporalCli();
  const db = path.join(dir, 'temporal.db');
  const logFile = path.join(dir, 'server.log');
  log(`Starting the embedded Temporal server on 127.0.0.1:${port} (Web UI http://127.0.0.1:${uiPort})`);
  const fd = openSync(logFile, 'a');
  const child = spawn(
    cli,
    [
      'server',
      'start-dev',
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
      '--ui-port',
      String(uiPort),
      '--db-filename',
      db,
      '--log-level',
      'warn',
      ...BUILD_SEARCH_ATTRIBUTES.flatMap((k) => ['--search-attribute', `${k.name}=${cliAttributeType(k.type)}`]),
    ],
    { detached: true, stdio: ['ignore', fd, fd] },
  );
  closeSync(fd);
  child.unref();
  const state: ServerState = { pid: child.pid!, port, uiPort, db, log: logFile, searchAttributes: BUILD_SEARCH_ATTRIBUTES.map((k) => k.name) };
  await fs.writeFile(path.join(dir, 'server.json'), JSON.stringify(state));
  let exited = false;
  child.once('exit', () => (exited = true));
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && !exited) {
    if (await isReady(target)) return state;
    await new Promise((r) => setTimeout(r, 300));
  }
  const tail = (await fs.readFile(logFile, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');
  throw new Error(`start temporal: the dev server did not become ready on port ${port}; see ${logFile}:\n${tail}`);
}

/** Stops the embedded server this store started. Returns false when none was running. */
export async function stopServer(home: string): Promise<boolean> {
  const state = await readState(home);
  if (!state || !alive(state.pid)) {
    await fs.rm(path.join(serverDir(home), 'server.json'), { force: true });
    return false;
  }
  process.kill(state.pid, 'SIGTERM');
  const deadline = Date.now() + 15_000;
  while (alive(state.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (alive(state.pid)) process.kill(state.pid, 'SIGKILL');
  while (alive(state.pid)) await new Promise((r) => setTimeout(r, 50));
  await fs.rm(path.join(serverDir(home), 'server.json'), { force: true });
  return true;
}

export async function serverStatus(home: string): Promise<{ running: boolean; state?: ServerState; target: TemporalTarget; reachable: boolean }> {
  const target = configuredTarget();
  const state = await readState(home);
  const running = !!state && alive(state.pid);
  return { running, state: running ? state : undefined, target, reachable: await isReady(target) };
}
