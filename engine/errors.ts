// Engine errors: a stable `code` to branch on, a message "verb noun: detail", a `cause`.
// `userError` marks mistakes in the user's input (bad Dockerfile, missing source): retrying
// cannot fix them, so the activity layer turns them into non-retryable failures.

export class EngineError extends Error {
  readonly code: string;
  readonly userError: boolean;
  constructor(code: string, message: string, opts: { cause?: unknown; userError?: boolean } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.userError = opts.userError ?? false;
  }
}

/** Where in a Dockerfile an error is: file name and 1-based line. */
export interface SourceLocation {
  file: string;
  line: number;
}

/** A Dockerfile that cannot be parsed or planned. */
export class DockerfileError extends EngineError {
  readonly location: SourceLocation;
  constructor(location: SourceLocation, detail: string, opts: { cause?: unknown } = {}) {
    super('DOCKERFILE_INVALID', `${location.file}:${location.line}: ${detail}`, { ...opts, userError: true });
    this.location = location;
  }
}

/** A user input other than the Dockerfile is wrong: missing COPY source, unknown image, bad flag. */
export class UserInputError extends EngineError {
  constructor(code: string, message: string, opts: { cause?: unknown } = {}) {
    super(code, message, { ...opts, userError: true });
  }
}

/** A path in a tar or a COPY would leave the root it must stay in. */
export class PathEscapeError extends EngineError {
  constructor(message: string) {
    super('PATH_ESCAPE', message, { userError: true });
  }
}

/** Stored content does not match its digest. */
export class DigestMismatchError extends EngineError {
  constructor(message: string) {
    super('DIGEST_MISMATCH', message);
  }
}

export class NotFoundError extends EngineError {
  constructor(code: string, message: string, userError = true) {
    super(code, message, { userError });
  }
}

/**
 * A registry refused a request or could not be reached. 4xx answers (bad credentials, no
 * such repository, a rejected manifest) are the user's to fix: retrying cannot help. 5xx
 * answers and network failures are the registry's trouble and worth retrying.
 */
export class RegistryError extends EngineError {
  /** The HTTP status, absent when no answer came. */
  readonly status?: number;
  /**
   * `permanent` marks a failure without a status that no retry can fix (a registry host name
   * that does not resolve, an answer that breaks the protocol).
   */
  constructor(message: string, opts: { status?: number; cause?: unknown; permanent?: boolean } = {}) {
    const clientError = opts.status !== undefined && opts.status >= 400 && opts.status < 500 && opts.status !== 408 && opts.status !== 429;
    const code = opts.status !== undefined ? `REGISTRY_HTTP_${opts.status}` : opts.permanent ? 'REGISTRY_INVALID' : 'REGISTRY_UNREACHABLE';
    super(code, message, { cause: opts.cause, userError: clientError || (opts.permanent ?? false) });
    this.status = opts.status;
  }
}
