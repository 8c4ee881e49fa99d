// The Temporal CLI release strata builds and runs as its embedded server: a module of its own so
// that `strata --version` reads it without loading Temporal's client.
export const TEMPORAL_CLI_VERSION = 'v1.5.1';
