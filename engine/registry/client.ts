// RegistryClient: the few calls of the OCI distribution API a push needs — blob HEAD,
// monolithic blob upload (POST, then PUT ?digest=) and manifest PUT — with basic and
// bearer-token auth answered from the registry's WWW-Authenticate challenge.
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md
// node:http rather than fetch: an upload streams with an exact Content-Length, which every
// registry accepts (some refuse a chunked PUT body), and fetch leaves that header to itself.
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import type { Digest } from '../digest.js';
import { RegistryError } from '../errors.js';
import { basicAuthorization, parseChallenge, type Credentials } from './auth.js';
import type { RegistryReference } from './reference.js';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A request body: bytes, or a stream opened anew for each attempt. */
type Body = { bytes: Buffer } | { size: number; open: () => Readable };

/** Registry answers worth reading are small (errors, tokens); more is cut off. */
const MAX_ANSWER_BYTES = 1 << 20;

export class RegistryClient {
  private authorization?: string;

  /**
   * `what` starts every error message (e.g. `push 127.0.0.1:5000/app:1`). Credentials are
   * sent only when the registry asks for them.
   */
  constructor(
    private readonly target: RegistryReference,
    private readonly what: string,
    private readonly credentials?: Credentials,
    private readonly signal?: AbortSignal,
  ) {}

  /** True when the repository holds the blob (HEAD 200), false on 404. */
  async hasBlob(digest: Digest): Promise<boolean> {
    const a = await this.call('HEAD', this.url(`blobs/${digest}`), {}, undefined, [200, 404]);
    return a.status === 200;
  }

  /**
   * Uploads one blob in a single PUT (the spec's monolithic upload). `open` is called once
   * per attempt and must give exactly `size` bytes hashing to `digest`; the registry checks.
   */
  async uploadBlob(digest: Digest, size: number, open: () => Readable): Promise<void> {
    const started = await this.call('POST', this.url('blobs/uploads/'), {}, { bytes: Buffer.alloc(0) }, [202]);
    const location = started.headers.location;
    if (!location) throw new RegistryError(`${this.what}: registry ${this.target.registry} started an upload without a Location`, { status: started.status });
    // Location may be relative, and may carry query state the PUT must keep.
    const put = new URL(location, this.url(''));
    put.searchParams.set('digest', digest);
    await this.call('PUT', put, { 'content-type': 'application/octet-stream' }, { size, open }, [201]);
  }

  /** Stores a manifest under a tag or digest; returns the digest the registry computed, if it says. */
  async putManifest(reference: string, mediaType: string, bytes: Buffer): Promise<string | undefined> {
    const a = await this.call('PUT', this.url(`manifests/${reference}`), { 'content-type': mediaType }, { bytes }, [201]);
    const d = a.headers['docker-content-digest'];
    return typeof d === 'string' ? d : undefined;
  }

  private url(rest: string): URL {
    return new URL(`${this.target.scheme}://${this.target.host}/v2/${this.target.repository}/${rest}`);
  }

  /** One call; a 401 is answered from its challenge once, then the call is made again. */
  private async call(method: string, url: URL, headers: Record<string, string>, body: Body | undefined, ok: number[]): Promise<Answer> {
    let answer = await this.send(method, url, headers, body);
    if (answer.status === 401) {
      await this.authenticate(answer, method, url);
      answer = await this.send(method, url, headers, body);
    }
    if (!ok.includes(answer.status)) throw this.refused(method, url, answer);
    return answer;
  }

  private async authenticate(answer: Answer, method: string, url: URL): Promise<void> {
    const challenge = parseChallenge(answer.headers['www-authenticate'] as string | undefined);
    const registry = this.target.registry;
    if (challenge?.scheme === 'basic') {
      if (!this.credentials)
        throw new RegistryError(`${this.what}: registry ${registry} requires a login, and no credentials for it were found (docker login ${registry} writes them)`, {
          status: 401,
        });
      this.authorization = basicAuthorization(this.credentials);
      return;
    }
    if (challenge?.scheme !== 'bearer' || !challenge.params.realm) throw this.refused(method, url, answer);
    // Ask for push and pull at once, whatever scope the first challenge named, so one token
    // serves the whole push.
    const token = new URL(challenge.params.realm);
    if (challenge.params.service) token.searchParams.set('service', challenge.params.service);
    token.searchParams.append('scope', `repository:${this.target.repository}:pull,push`);
    const headers: Record<string, string> = {};
    if (this.credentials) headers.authorization = basicAuthorization(this.credentials);
    const got = await this.send('GET', token, headers, undefined, false);
    if (got.status !== 200) {
      const why = got.status === 401 ? (this.credentials ? ': the credentials were refused' : ': a login is required (docker login)') : '';
      throw new RegistryError(`${this.what}: token server ${token.origin}${token.pathname} answered ${statusText(got.status)} for registry ${registry}${why}`, {
        status: got.status,
      });
    }
    let parsed: { token?: string; access_token?: string };
    try {
      parsed = JSON.parse(got.body.toString('utf8')) as typeof parsed;
    } catch (err) {
      throw new RegistryError(`${this.what}: token server ${token.origin} for registry ${registry} sent no JSON`, { cause: err });
    }
    const value = parsed.token ?? parsed.access_token;
    if (!value) throw new RegistryError(`${this.what}: token server ${token.origin} for registry ${registry} sent no token`);
    this.authorization = `Bearer ${value}`;
  }

  private refused(method: string, url: URL, a: Answer): RegistryError {
    let detail: string;
    try {
      const errs = (JSON.parse(a.body.toString('utf8')) as { errors?: { code?: string; message?: string }[] }).errors ?? [];
      detail = errs.map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
    } catch {
      detail = a.body.toString('utf8').trim().slice(0, 200);
    }
    return new RegistryError(`${this.what}: registry ${this.target.registry} answered ${statusText(a.status)} to ${method} ${url.pathname}${detail ? `: ${detail}` : ''}`, {
      status: a.status,
    });
  }

  private send(method: string, url: URL, headers: Record<string, string>, body: Body | undefined, withAuth = true): Promise<Answer> {
    const all: Record<string, string | number> = { 'user-agent': 'strata', ...headers };
    if (withAuth && this.authorization) all.authorization = this.authorization;
    if (body) all['content-length'] = 'bytes' in body ? body.bytes.length : body.size;
    const transport = url.protocol === 'https:' ? https : http;
    return new Promise<Answer>((resolve, reject) => {
      let source: Readable | undefined;
      const unreachable = (err: Error) => {
        source?.destroy();
        reject(new RegistryError(`${this.what}: cannot reach registry ${this.target.registry} (${method} ${url.origin}${url.pathname}): ${err.message}`, { cause: err }));
      };
      const req = transport.request(url, { method, headers: all, signal: this.signal }, (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on('data', (c: Buffer) => {
          if (kept < MAX_ANSWER_BYTES) chunks.push(c);
          kept += c.length;
        });
        res.on('end', () => {
          // An early answer (a refusal before the body was read) ends the upload.
          source?.destroy();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
        });
        res.on('error', unreachable);
      });
      req.on('error', (err) => {
        if (this.signal?.aborted) reject(this.signal.reason ?? err);
        else unreachable(err);
      });
      if (!body) req.end();
      else if ('bytes' in body) req.end(body.bytes);
      else {
        // More or fewer bytes than announced fail the request here, not in a hung upload.
        (req as { strictContentLength?: boolean }).strictContentLength = true; // Node 18.10+; not in our @types/node
        source = body.open();
        // A broken source aborts the request: the registry sees a short body and drops it.
        source.on('error', (err) => {
          req.destroy(err);
          reject(err);
        });
        source.pipe(req);
      }
    });
  }
}

function statusText(status: number): string {
  return `${status} ${http.STATUS_CODES[status] ?? ''}`.trim();
}
