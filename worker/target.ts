// Which Temporal server strata talks to, from the environment alone: no Temporal module is
// loaded here, so a command that only needs to know the target (the build's fast path through
// the background worker, client/workerLink.ts) does not pay for @temporalio/client.
import { readFileSync } from 'node:fs';

export interface TemporalTarget {
  address: string;
  namespace: string;
  /** True when the address is the embedded server's. */
  embedded: boolean;
  /** Web UI base URL, when known. */
  uiUrl?: string;
  /** TLS (mTLS with a client certificate) towards TEMPORAL_ADDRESS's server. */
  tls?: TemporalTls;
}

/** TLS towards the server, from the environment names Temporal's own CLI reads. */
export interface TemporalTls {
  clientCertPair?: { crt: Buffer; key: Buffer };
  serverRootCACertificate?: Buffer;
  serverNameOverride?: string;
}

/**
 * TLS from TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY (a client certificate for mTLS, PEM files),
 * TEMPORAL_TLS_CA (the CA that signed the server's certificate) and TEMPORAL_TLS_SERVER_NAME;
 * undefined (plain gRPC) when none is set. A server reachable by RUN steps must demand a
 * client certificate (docs/security.md).
 */
export function tlsFromEnv(env: NodeJS.ProcessEnv = process.env): TemporalTls | undefined {
  const { TEMPORAL_TLS_CERT: cert, TEMPORAL_TLS_KEY: key, TEMPORAL_TLS_CA: ca, TEMPORAL_TLS_SERVER_NAME: name } = env;
  if (!cert && !key && !ca && !name) return undefined;
  if (!cert !== !key) throw new Error('connect temporal: TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together (a client certificate and its key)');
  const read = (file: string, what: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`connect temporal: cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
  };
  return {
    ...(cert && key ? { clientCertPair: { crt: read(cert, 'TEMPORAL_TLS_CERT'), key: read(key, 'TEMPORAL_TLS_KEY') } } : {}),
    ...(ca ? { serverRootCACertificate: read(ca, 'TEMPORAL_TLS_CA') } : {}),
    ...(name ? { serverNameOverride: name } : {}),
  };
}

/** What Connection.connect and NativeConnection.connect need to reach `target`. */
export function connectionOptions(target: TemporalTarget): { address: string; tls?: TemporalTls } {
  return { address: target.address, ...(target.tls ? { tls: target.tls } : {}) };
}

export function embeddedPort(): number {
  return Number(process.env.STRATA_TEMPORAL_PORT || 7233);
}

/** The server the environment names, or the embedded server's address. */
export function configuredTarget(): TemporalTarget {
  const namespace = process.env.TEMPORAL_NAMESPACE || 'default';
  if (process.env.TEMPORAL_ADDRESS) {
    return { address: process.env.TEMPORAL_ADDRESS, namespace, embedded: false, uiUrl: process.env.STRATA_UI_URL, tls: tlsFromEnv() };
  }
  const port = embeddedPort();
  return { address: `127.0.0.1:${port}`, namespace, embedded: true, uiUrl: process.env.STRATA_UI_URL || `http://127.0.0.1:${port + 1000}` };
}
