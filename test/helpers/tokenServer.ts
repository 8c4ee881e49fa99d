// A token server as the distribution token spec describes, for registries started with
// `token` auth: it signs JWTs with a throwaway key whose certificate the registry trusts.
// It grants what the scope asks to a client that logs in as tester:s3cret, and `pull` (only)
// to anonymous clients when asked to.
import { createPrivateKey, sign, X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import type { TokenAuth } from './registry.js';

export interface TokenServer {
  auth: TokenAuth;
  /** Every scope asked for, and whether the asker had logged in. */
  requests: { scopes: string[]; user?: string }[];
  stop(): Promise<void>;
}

export const TOKEN_USER = 'tester';
export const TOKEN_PASSWORD = 's3cret';

export async function startTokenServer(opts: { anonymousPull?: boolean } = {}): Promise<TokenServer> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-token-'));
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=strata-test-token']);
  const key = createPrivateKey(await fs.readFile(keyFile));
  const certDer = new X509Certificate(await fs.readFile(certFile)).raw.toString('base64');
  const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');
  const requests: TokenServer['requests'] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const scopes = url.searchParams.getAll('scope');
    const loggedIn = req.headers.authorization === `Basic ${Buffer.from(`${TOKEN_USER}:${TOKEN_PASSWORD}`).toString('base64')}`;
    requests.push({ scopes, user: loggedIn ? TOKEN_USER : undefined });
    if (req.headers.authorization && !loggedIn) return void res.writeHead(401).end();
    if (!loggedIn && !opts.anonymousPull) return void res.writeHead(401).end();
    const access = scopes.map((s) => {
      const [type, name, actions] = s.split(':');
      const asked = actions!.split(',');
      return { type, name, actions: loggedIn ? asked : asked.filter((a) => a === 'pull') };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', x5c: [certDer] }));
    const claims = b64url(
      JSON.stringify({
        iss: 'strata-test-issuer',
        sub: loggedIn ? TOKEN_USER : '',
        aud: url.searchParams.get('service'),
        exp: now + 600,
        nbf: now - 60,
        iat: now,
        jti: String(Math.random()),
        access,
      }),
    );
    const signature = b64url(sign('sha256', Buffer.from(`${header}.${claims}`), key));
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `${header}.${claims}.${signature}` }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const realm = `http://127.0.0.1:${(server.address() as { port: number }).port}/token`;
  return {
    auth: { realm, service: 'strata-test-registry', issuer: 'strata-test-issuer', certFile },
    requests,
    async stop() {
      await new Promise((r) => server.close(r));
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
