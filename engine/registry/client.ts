// RegistryClient: the calls of the OCI distribution API that pulls and pushes need —
// manifests, blobs (streamed, redirects followed), cross-repository mounts, monolithic and
// chunked uploads with their status — with basic auth and bearer tokens answered from the
// registry's WWW-Authenticate challenge.
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md
// node:http rather than fetch: an upload streams with an exact Content-Length, which every
// registry accepts (some refuse a chunked PUT body), and fetch leaves that header to itself.
//
// Everything a registry answers is hostile: bodies read into memory are bounded, a silent
// connection is dropped after `idleTimeoutMs`, redirects go to http(s) only and at most 5
// times, and credentials go only to the registry's own origin.
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
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
export type Body = { bytes: Buffer } | { size: number; open: () => Readable };

export interface ClientOptions {
  credentials?: Credentials;
  signal?: AbortSignal;
  /** What the token asks for on the target repository. */
  actions: 'pull' | 'pull,push';
  /** Other repositories of the registry blobs are mounted from: their pull scope rides on the token. */
  mountFrom?: string[];
  /** A request silent this long is abandoned (and counted as a dropped connection). */
  idleTimeoutMs?: number;
}

/** Registry answers worth reading whole are small (errors, tokens); more is cut off. */
const MAX_ANSWER_BYTES = 1 << 20;
const MAX_REDIRECTS = 5;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** Retries of one idempotent call after a 5xx or a dropped connection, with these pauses. */
const RETRY_DELAYS_MS = [250, 1_000, 4_000];
/** Network errors worth another try: the connection broke, not "nobody listens" or "no such host". */
const TRANSIENT_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN', 'ERR_STREAM_PREMATURE_CLOSE', 'STRATA_IDLE']);

export class RegistryClient {
  private authorization?: string;
  /** The refresh token a token server handed out (login with offline_token), if any. */
  refreshToken?: string;

  /**
   * `what` starts every error message (e.g. `push 127.0.0.1:5000/app:1`). Credentials are
   * sent only when the registry asks for them.
   */
  constructor(
    readonly target: RegistryReference,
    private readonly what: string,
    private readonly opts: ClientOptions,
  ) {}

  /** GET /v2/: checks that the registry answers and that the credentials are good (login). */
  async ping(offlineToken = false): Promise<void> {
    await this.call('GET', this.base('/v2/'), {}, undefined, [200], { offlineToken });
  }

  /** A manifest or index by tag or digest, at most `maxBytes`; the media type the registry gave. */
  async getManifest(reference: string, accept: string[], maxBytes: number): Promise<{ bytes: Buffer; mediaType: string }> {
    const a = await this.call('GET', this.url(`manifests/${reference}`), { accept: accept.join(', ') }, undefined, [200], { maxBytes });
    return {
      bytes: a.body,
      mediaType: String(a.headers['content-type'] ?? '')
        .split(';')[0]!
        .trim(),
    };
  }

  /** A small blob (a config) read whole, at most `maxBytes`. */
  async getBlobBytes(digest: Digest, maxBytes: number): Promise<Buffer> {
    return (await this.call('GET', this.url(`blobs/${digest}`), {}, undefined, [200], { maxBytes })).body;
  }

  /**
   * A blob's bytes as a stream, redirects followed (registries send blobs from storage
   * elsewhere). The caller bounds the size and checks the digest; it must consume or
   * destroy the stream.
   */
  async openBlob(digest: Digest): Promise<Readable> {
    const a = await this.call('GET', this.url(`blobs/${digest}`), {}, undefined, [200], { stream: true });
    return a.stream!;
  }

  /** True when the repository holds the blob (HEAD 200), false on 404. */
  async hasBlob(digest: Digest): Promise<boolean> {
    const a = await this.call('HEAD', this.url(`blobs/${digest}`), {}, undefined, [200, 404]);
    return a.status === 200;
  }

  /**
   * Asks the registry to link a blob from another repository (`from`) into this one:
   * true when it did (201). A registry that cannot starts an upload instead (202); that
   * session is cancelled and false returned.
   */
  async mountBlob(digest: Digest, from: string): Promise<boolean> {
    const url = this.url('blobs/uploads/');
    url.searchParams.set('mount', digest);
    url.searchParams.set('from', from);
    const a = await this.call('POST', url, {}, { bytes: Buffer.alloc(0) }, [201, 202]);
    if (a.status === 201) return true;
    const location = a.headers.location;
    if (location) await this.call('DELETE', new URL(location, url), {}, undefined, [202, 204, 404], { retry: false }).catch(() => undefined);
    return false;
  }

  /** Starts an upload session; returns its URL. */
  async startUpload(): Promise<URL> {
    const url = this.url('blobs/uploads/');
    const a = await this.call('POST', url, {}, { bytes: Buffer.alloc(0) }, [202]);
    return this.location(a, url);
  }

  /**
   * Sends bytes [start, start+size) of the blob to an upload session (PATCH with
   * Content-Range); returns the session's next URL. Not retried here: after a dropped
   * connection the caller asks uploadStatus where to go on from.
   */
  async patchUpload(session: URL, start: number, size: number, open: () => Readable): Promise<URL> {
    const headers = { 'content-type': 'application/octet-stream', 'content-range': `${start}-${start + size - 1}` };
    const a = await this.call('PATCH', session, headers, { size, open }, [202], { retry: false });
    return this.location(a, session);
  }

  /**
   * Where an upload session stands: the next byte the registry expects (from its Range
   * header, `0-<last>`) and the session's URL; undefined when the registry no longer knows
   * the session (404) or refuses to resume it (4xx), so the caller starts anew.
   */
  async uploadStatus(session: URL): Promise<{ session: URL; offset: number } | undefined> {
    const a = await this.call('GET', session, {}, undefined, [204, 200, 400, 404, 416]);
    if (a.status !== 204 && a.status !== 200) return undefined;
    const offset = nextOffset(a.headers.range as string | undefined);
    return { session: a.headers.location ? new URL(a.headers.location, session) : session, offset };
  }

  /** Ends an upload session under `digest` (PUT ?digest=), with the last bytes if given. */
  async finishUpload(session: URL, digest: Digest, body?: Body): Promise<void> {
    const put = new URL(session);
    put.searchParams.set('digest', digest);
    await this.call('PUT', put, { 'content-type': 'application/octet-stream' }, body ?? { bytes: Buffer.alloc(0) }, [201], { retry: body === undefined || 'bytes' in body });
  }

  /**
   * Uploads one blob in a single PUT (the spec's monolithic upload). `open` is called once
   * per attempt and must give exactly `size` bytes hashing to `digest`; the registry checks.
   */
  async uploadBlob(digest: Digest, size: number, open: () => Readable): Promise<void> {
    const session = await this.startUpload();
    await this.finishUpload(session, digest, { size, open });
  }

  /** Stores a manifest under a tag or digest; returns the digest the registry computed, if it says. */
  async putManifest(reference: string, mediaType: string, bytes: Buffer): Promise<string | undefined> {
    const a = await this.call('PUT', this.url(`manifests/${reference}`), { 'content-type': mediaType }, { bytes }, [201]);
    const d = a.headers['docker-content-digest'];
    return typeof d === 'string' ? d : undefined;
  }

  private base(pathname: string): URL {
    return new URL(`${this.target.scheme}://${this.target.host}${pathname}`);
  }

  private url(rest: string): URL {
    return this.base(`/v2/${this.target.repository}/${rest}`);
  }

  private location(a: Answer, from: URL): URL {
    const location = a.headers.location;
    if (!location) throw new RegistryError(`${this.what}: registry ${this.target.registry} answered ${a.status} without a Location`, { status: a.status });
    // Relative, and may carry query state (distribution's _state) the next request must keep.
    const url = new URL(location, from);
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new RegistryError(`${this.what}: registry ${this.target.registry} sent an upload location that is not http(s): ${url.protocol}`, { permanent: true });
    return url;
  }

  /**
   * One call: a 401 is answered from its challenge once, then the call is made again; a 5xx
   * or dropped connection is tried again (idempotent calls and bodies that can be reopened).
   */
  private async call(
    method: string,
    url: URL,
    headers: Record<string, string>,
    body: Body | undefined,
    ok: number[],
    opts: { maxBytes?: number; stream?: boolean; retry?: boolean; offlineToken?: boolean } = {},
  ): Promise<Answer & { stream?: IncomingMessage }> {
    for (let attempt = 0; ; attempt++) {
      try {
        let answer = await this.follow(method, url, headers, body, opts);
        if (answer.status === 401) {
          answer.stream?.destroy();
          await this.authenticate(answer, method, url, opts.offlineToken ?? false);
          answer = await this.follow(method, url, headers, body, opts);
        }
        if (!ok.includes(answer.status)) {
          if (answer.stream) answer.body = await readBounded(answer.stream, MAX_ANSWER_BYTES).catch(() => Buffer.alloc(0));
          throw this.refused(method, url, answer);
        }
        return answer;
      } catch (err) {
        const retryable = opts.retry !== false && err instanceof RegistryError && (err.status === undefined ? isTransient(err) : err.status >= 500 || err.status === 429);
        if (!retryable || attempt >= RETRY_DELAYS_MS.length || this.opts.signal?.aborted) throw err;
        await sleep(RETRY_DELAYS_MS[attempt]!, this.opts.signal);
      }
    }
  }

  /** Sends, following redirects of GET and HEAD (to http(s) only, credentials to the registry's origin only). */
  private async follow(
    method: string,
    url: URL,
    headers: Record<string, string>,
    body: Body | undefined,
    opts: { maxBytes?: number; stream?: boolean },
  ): Promise<Answer & { stream?: IncomingMessage }> {
    let current = url;
    for (let hops = 0; ; hops++) {
      const sameOrigin = current.origin === this.base('/').origin;
      const answer = await this.send(method, current, headers, body, { ...opts, withAuth: sameOrigin });
      const location = answer.headers.location;
      if (![301, 302, 303, 307, 308].includes(answer.status) || !location || (method !== 'GET' && method !== 'HEAD')) return answer;
      answer.stream?.destroy();
      const next = new URL(location, current);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new RegistryError(`${this.what}: registry ${this.target.registry} redirected ${method} ${url.pathname} to ${next.protocol} (only http and https are followed)`, {
          permanent: true,
        });
      }
      if (hops >= MAX_REDIRECTS)
        throw new RegistryError(`${this.what}: registry ${this.target.registry} redirected ${method} ${url.pathname} more than ${MAX_REDIRECTS} times`, { permanent: true });
      current = next;
    }
  }

  private async authenticate(answer: Answer, method: string, url: URL, offlineToken: boolean): Promise<void> {
    const challenge = parseChallenge(answer.headers['www-authenticate'] as string | undefined);
    const registry = this.target.registry;
    const credentials = this.opts.credentials;
    if (challenge?.scheme === 'basic') {
      if (!credentials || credentials.identityToken) {
        throw new RegistryError(`${this.what}: registry ${registry} requires a login, and no credentials for it were found (strata login ${registry} writes them)`, {
          status: 401,
        });
      }
      this.authorization = basicAuthorization(credentials);
      return;
    }
    if (challenge?.scheme !== 'bearer' || !challenge.params.realm) throw this.refused(method, url, answer);
    let token: URL;
    try {
      token = new URL(challenge.params.realm);
    } catch {
      throw new RegistryError(`${this.what}: registry ${registry} named a token realm that is not a URL: ${challenge.params.realm.slice(0, 100)}`, { permanent: true });
    }
    if (token.protocol !== 'http:' && token.protocol !== 'https:')
      throw new RegistryError(`${this.what}: registry ${registry} named a token realm that is not http(s)`, { permanent: true });
    // One token for everything this client does: the repository's actions, and pull on each
    // repository blobs are mounted from, whatever scope the first challenge named.
    const scopes = [`repository:${this.target.repository}:${this.opts.actions}`, ...(this.opts.mountFrom ?? []).map((r) => `repository:${r}:pull`)];
    const service = challenge.params.service;
    let got: Answer;
    if (credentials?.identityToken) {
      // The OAuth refresh_token grant, as docker trades an identity token.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: credentials.identityToken, client_id: 'strata', scope: scopes.join(' ') });
      if (service) form.set('service', service);
      got = await this.send(
        'POST',
        token,
        { 'content-type': 'application/x-www-form-urlencoded' },
        { bytes: Buffer.from(form.toString()) },
        { withAuth: false, maxBytes: MAX_ANSWER_BYTES },
      );
    } else {
      if (service) token.searchParams.set('service', service);
      for (const s of scopes) token.searchParams.append('scope', s);
      if (offlineToken && credentials) {
        token.searchParams.set('offline_token', 'true');
        token.searchParams.set('client_id', 'strata');
      }
      const headers: Record<string, string> = {};
      if (credentials) headers.authorization = basicAuthorization(credentials);
      got = await this.send('GET', token, headers, undefined, { withAuth: false, maxBytes: MAX_ANSWER_BYTES });
    }
    if (got.status !== 200) {
      const why = got.status === 401 ? (credentials ? ': the credentials were refused' : ': a login is required (strata login)') : '';
      throw new RegistryError(`${this.what}: token server ${token.origin}${token.pathname} answered ${statusText(got.status)} for registry ${registry}${why}`, {
        status: got.status,
      });
    }
    let parsed: { token?: unknown; access_token?: unknown; refresh_token?: unknown };
    try {
      parsed = JSON.parse(got.body.toString('utf8')) as typeof parsed;
    } catch (err) {
      throw new RegistryError(`${this.what}: token server ${token.origin} for registry ${registry} sent no JSON`, { cause: err, permanent: true });
    }
    const value = typeof parsed.token === 'string' && parsed.token ? parsed.token : parsed.access_token;
    if (typeof value !== 'string' || !value || /[\r\n]/.test(value))
      throw new RegistryError(`${this.what}: token server ${token.origin} for registry ${registry} sent no token`, { permanent: true });
    if (typeof parsed.refresh_token === 'string' && parsed.refresh_token) this.refreshToken = parsed.refresh_token;
    this.authorization = `Bearer ${value}`;
  }

  private refused(method: string, url: URL, a: Answer): RegistryError {
    let detail: string;
    try {
      const errs = (JSON.parse(a.body.toString('utf8')) as { errors?: { code?: string; message?: string }[] }).errors ?? [];
      detail = errs.map((e) => [e.code, e.message].filter((x) => typeof x === 'string' && x).join(': ')).join('; ');
    } catch {
      detail = a.body.toString('utf8').trim();
    }
    detail = detail.replace(/[^\x20-\x7e]+/g, ' ').slice(0, 200);
    return new RegistryError(`${this.what}: registry ${this.target.registry} answered ${statusText(a.status)} to ${method} ${url.pathname}${detail ? `: ${detail}` : ''}`, {
      status: a.status,
    });
  }

  private send(
    method: string,
    url: URL,
    headers: Record<string, string>,
    body: Body | undefined,
    opts: { withAuth: boolean; maxBytes?: number; stream?: boolean },
  ): Promise<Answer & { stream?: IncomingMessage }> {
    const all: Record<string, string | number> = { 'user-agent': 'strata', ...headers };
    if (opts.withAuth && this.authorization) all.authorization = this.authorization;
    if (body) all['content-length'] = 'bytes' in body ? body.bytes.length : body.size;
    const transport = url.protocol === 'https:' ? https : http;
    const idle = this.opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    const maxBytes = opts.maxBytes ?? MAX_ANSWER_BYTES;
    return new Promise((resolve, reject) => {
      let source: Readable | undefined;
      let settled = false;
      const fail = (err: Error) => {
        source?.destroy();
        if (settled) return;
        settled = true;
        if (this.opts.signal?.aborted) reject(this.opts.signal.reason ?? err);
        else if (err instanceof RegistryError) reject(err);
        else reject(this.unreachable(method, url, err));
      };
      const req = transport.request(url, { method, headers: all, signal: this.opts.signal }, (res) => {
        const status = res.statusCode ?? 0;
        if (opts.stream && status >= 200 && status < 300) {
          settled = true;
          resolve({ status, headers: res.headers, body: Buffer.alloc(0), stream: res });
          return;
        }
        const limit = status >= 200 && status < 300 ? maxBytes : MAX_ANSWER_BYTES;
        const declared = Number(res.headers['content-length']);
        // fail() before destroy(): destroying emits 'aborted' at once, which would win as a dropped connection.
        if (limit === maxBytes && opts.maxBytes !== undefined && declared > maxBytes) {
          fail(
            new RegistryError(`${this.what}: registry ${this.target.registry} answered ${method} ${url.pathname} with ${declared} bytes, more than the ${maxBytes} allowed`, {
              permanent: true,
            }),
          );
          return void res.destroy();
        }
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on('data', (c: Buffer) => {
          kept += c.length;
          if (kept <= limit) return void chunks.push(c);
          if (opts.maxBytes !== undefined && limit === maxBytes) {
            fail(
              new RegistryError(`${this.what}: registry ${this.target.registry} answered ${method} ${url.pathname} with more than the ${maxBytes} bytes allowed`, {
                permanent: true,
              }),
            );
            res.destroy();
          }
        });
        res.on('end', () => {
          // An early answer (a refusal before the body was read) ends the upload.
          source?.destroy();
          if (settled) return;
          settled = true;
          resolve({ status, headers: res.headers, body: Buffer.concat(chunks) });
        });
        res.on('error', fail);
        res.on('aborted', () => fail(Object.assign(new Error('the connection closed mid-answer'), { code: 'ECONNRESET' })));
      });
      req.setTimeout(idle, () => req.destroy(Object.assign(new Error(`no data for ${idle / 1000}s`), { code: 'STRATA_IDLE' })));
      req.on('error', fail);
      if (!body) req.end();
      else if ('bytes' in body) req.end(body.bytes);
      else {
        // More or fewer bytes than announced fail the request here, not in a hung upload.
        (req as { strictContentLength?: boolean }).strictContentLength = true; // Node 18.10+; not in our @types/node
        source = body.open();
        // A broken source aborts the request: the registry sees a short body and drops it.
        source.on('error', (err) => {
          req.destroy(err);
          if (!settled) {
            settled = true;
            reject(err);
          }
        });
        source.pipe(req);
      }
    });
  }

  private unreachable(method: string, url: URL, err: Error): RegistryError {
    const code = (err as NodeJS.ErrnoException).code;
    // A host that does not resolve is a typo or a machine without that network: no retry helps.
    return new RegistryError(`${this.what}: cannot reach registry ${this.target.registry} (${method} ${url.origin}${url.pathname}): ${err.message}`, {
      cause: err,
      permanent: code === 'ENOTFOUND',
    });
  }
}

function isTransient(err: RegistryError): boolean {
  const code = (err.cause as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && TRANSIENT_CODES.has(code);
}

/**
 * The next byte an upload session expects, from its Range header: `0-1023` → 1024. No header
 * or one that cannot be read → 0 (start over). `0-0` is ambiguous (distribution answers it
 * for an empty session and for one byte): 0, the likely one.
 */
export function nextOffset(range: string | undefined): number {
  const m = /^(?:bytes=)?0-(\d+)$/.exec((range ?? '').trim());
  if (!m) return 0;
  const last = Number(m[1]);
  return Number.isSafeInteger(last) && last > 0 ? last + 1 : 0;
}

/** Reads a stream whole, up to `max` bytes (the rest is dropped). */
export async function readBounded(src: Readable, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let have = 0;
  for await (const c of src) {
    if (have >= max) continue;
    chunks.push(c as Buffer);
    have += (c as Buffer).length;
  }
  return Buffer.concat(chunks).subarray(0, max);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

export function statusText(status: number): string {
  return `${status} ${http.STATUS_CODES[status] ?? ''}`.trim();
}
