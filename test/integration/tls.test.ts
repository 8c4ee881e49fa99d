// mTLS towards Temporal (TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY, TEMPORAL_TLS_CA): the test's dev
// server gets a TLS front that demands a client certificate (node:tls, ALPN h2, bytes passed
// through to the dev server), with the certificates docker-compose makes
// (docker/temporal-certs.sh). strata's CLI and a worker build through it; without the client
// certificate nothing gets through.
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { execa } from 'execa';
import { REPO_ROOT, strata } from '../helpers/cli.js';
import { startTestWorker, type TestWorker } from '../helpers/worker.js';

let certs: string;
let front: tls.Server;
let address: string;
const workers: TestWorker[] = [];

beforeAll(async () => {
  certs = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-tls-'));
  await execa('sh', [path.join(REPO_ROOT, 'docker', 'temporal-certs.sh'), certs]);
  const read = (f: string) => fs.readFile(path.join(certs, f));
  front = tls.createServer(
    { key: await read('server.key'), cert: await read('server.pem'), ca: await read('ca.pem'), requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] },
    (client) => {
      const server = net.connect(Number(process.env.STRATA_TEMPORAL_PORT), '127.0.0.1');
      client.pipe(server).pipe(client);
      client.on('error', () => server.destroy());
      server.on('error', () => client.destroy());
    },
  );
  front.on('tlsClientError', () => undefined); // a client without a certificate: refused, expected
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  address = `127.0.0.1:${(front.address() as net.AddressInfo).port}`;
});

afterAll(async () => {
  for (const w of workers) await w.stop();
  await new Promise((r) => front?.close(r));
  await fs.rm(certs, { recursive: true, force: true });
});

const tlsEnv = () => ({
  TEMPORAL_ADDRESS: address,
  TEMPORAL_TLS_CA: path.join(certs, 'ca.pem'),
  TEMPORAL_TLS_CERT: path.join(certs, 'client.pem'),
  TEMPORAL_TLS_KEY: path.join(certs, 'client.key'),
  // The certificate's name: checked against it, and no IP address as the TLS server name.
  TEMPORAL_TLS_SERVER_NAME: 'localhost',
});

test('with the client certificate the server answers; without it, it does not', async () => {
  const ok = await strata(['server', 'status'], { env: tlsEnv() });
  expect(ok.stdout).toContain('reachable: yes');
  const { TEMPORAL_TLS_CERT: _c, TEMPORAL_TLS_KEY: _k, ...caOnly } = tlsEnv();
  const refused = await strata(['server', 'status'], { env: caOnly });
  expect(refused.stdout).toContain('reachable: no');
  expect(refused.exitCode).toBe(3);
});

test('a worker and strata build over mTLS', async () => {
  const worker = await startTestWorker([], tlsEnv());
  workers.push(worker);
  const ctx = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-tls-ctx-'));
  try {
    await fs.writeFile(path.join(ctx, 'Dockerfile'), 'FROM busybox\nRUN echo over-tls > /t\n');
    const r = await strata(['build', ctx], { env: { ...tlsEnv(), STRATA_TASK_QUEUE: worker.queue } });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/Successfully built [0-9a-f]{12}/);
  } finally {
    await fs.rm(ctx, { recursive: true, force: true });
  }
});

test('half a client certificate is a clear error', async () => {
  const { TEMPORAL_TLS_KEY: _k, ...certOnly } = tlsEnv();
  const r = await strata(['server', 'status'], { env: certOnly });
  expect(r.exitCode).toBe(1);
  expect(r.stderr).toContain('TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together');
});
