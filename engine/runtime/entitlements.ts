// The rights a build may ask for (`strata build --allow`), apart from network.ts so the CLI
// can check a flag without loading the sandbox's modules.

/** BuildKit's name for the right to use the host's network. */
export const NETWORK_HOST = 'network.host';
/** The entitlements a build may ask for. */
export const ENTITLEMENTS = [NETWORK_HOST] as const;
