// Placeholder: replaced by the integration environment's set-up.
export default async function globalSetup(): Promise<void> {}
