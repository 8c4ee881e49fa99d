// Debian's docker-registry (CNCF distribution) on a free loopback port, with filesystem
// storage in a temp dir and its access log kept, so tests can count the requests it served.
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface RegistryRequest {
  method: string;
  uri: string;
  status: number;
}

export interface TestRegistry {
  /** `127.0.0.1:PORT`, the name images are tagged with. */
  address: string;
  /** Every request served so far, from the access log, oldest first. */
  requests(): Promise<RegistryRequest[]>;
  stop(): Promise<void>;
}

/** The token auth of the distribution token spec: the registry trusts tokens signed by the cert's key. */
export interface TokenAuth {
  realm: string;
  service: string;
  issuer: string;
  /** PEM certificate whose key signs the tokens (sent in each token's x5c header). */
  certFile: string;
}

/** A loopback port nothing listens on (it was free a moment ago). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts a registry. `htpasswd` (a `user:bcrypt-hash` line) turns on basic auth, as
 * `docker login` meets it.
 */
export async function startRegistry(opts: { htpasswd?: string; token?: TokenAuth } = {}): Promise<TestRegistry> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-registry-'));
  const port = await freePort();
  const logFile = path.join(dir, 'registry.log');
  const config = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${path.join(dir, 'data')}`,
    'http:',
    `  addr: 127.0.0.1:${port}`,
  ];
  if (opts.htpasswd) {
    await fs.writeFile(path.join(dir, 'htpasswd'), opts.htpasswd + '\n');
    config.push('auth:', '  htpasswd:', '    realm: strata-test', `    path: ${path.join(dir, 'htpasswd')}`);
  }
  if (opts.token) {
    const t = opts.token;
    config.push('auth:', '  token:', `    realm: ${t.realm}`, `    service: ${t.service}`, `    issuer: ${t.issuer}`, `    rootcertbundle: ${t.certFile}`);
  }
  await fs.writeFile(path.join(dir, 'config.yml'), config.join('\n') + '\n');
  const log = await fs.open(logFile, 'a');
  const child: ChildProcess = spawn('/usr/bin/docker-registry', ['serve', path.join(dir, 'config.yml')], { stdio: ['ignore', log.fd, log.fd] });
  await log.close();
  const address = `127.0.0.1:${port}`;

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await fs.rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 30_000;
  for (;;) {
    const up = await fetch(`http://${address}/v2/`).then(
      (r) => r.status === 200 || r.status === 401,
      () => false,
    );
    if (up) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      const text = await fs.readFile(logFile, 'utf8').catch(() => '');
      await stop();
      throw new Error(`docker-registry did not start on ${address}:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    address,
    async requests() {
      const text = await fs.readFile(logFile, 'utf8');
      return [...text.matchAll(/"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3}) /g)].map((m) => ({ method: m[1]!, uri: m[2]!, status: Number(m[3]) }));
    },
    stop,
  };
}
