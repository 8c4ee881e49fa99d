// A RUN step's network: `default` is a network namespace of its own whose only way out is
// slirp4netns (user-mode NAT on the host's side, as rootless docker and podman use), with
// the host's loopback cut off in slirp itself and the host's own addresses and link-local
// (cloud metadata) unroutable inside; `none` is a namespace with loopback only; `host` is the
// host's namespace, allowed only with the network.host entitlement.
import { promises as fs } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { execa } from 'execa';
import { EngineError, UserInputError } from '../errors.js';
import { NETWORK_HOST } from './entitlements.js';
import { unmountPath } from './overlay.js';

export { ENTITLEMENTS, NETWORK_HOST } from './entitlements.js';

export type NetworkMode = 'default' | 'none' | 'host';

/**
 * Whether this build may use the host's network: `granted` when it asked (`--allow
 * network.host`) and the worker does not refuse it.
 */
export type HostNetworkGrant = 'granted' | 'not-requested' | 'denied-by-worker';

export function hostNetworkGrant(requested: readonly string[] | undefined, deniedByWorker: readonly string[] | undefined): HostNetworkGrant {
  if (!requested?.includes(NETWORK_HOST)) return 'not-requested';
  return deniedByWorker?.includes(NETWORK_HOST) ? 'denied-by-worker' : 'granted';
}

/** Refuses `what` (e.g. `RUN --network=host`) unless the build holds network.host. */
export function requireHostNetwork(grant: HostNetworkGrant, what: string): void {
  if (grant === 'granted') return;
  if (grant === 'denied-by-worker') {
    throw new UserInputError('ENTITLEMENT_DENIED', `${what}: this worker refuses the ${NETWORK_HOST} entitlement (strata worker --deny-entitlement ${NETWORK_HOST})`);
  }
  throw new UserInputError('ENTITLEMENT_MISSING', `${what}: the host's network needs the ${NETWORK_HOST} entitlement: strata build --allow ${NETWORK_HOST}`);
}

/** slirp4netns's fixed layout: the step is 10.0.2.100, the gateway 10.0.2.2, DNS 10.0.2.3. */
export const SLIRP_DNS = '10.0.2.3';
const TAP = 'tap0';
/** slirp4netns's fastest MTU: fewer, larger frames through user space. */
const MTU = 65520;

/** Link-local: cloud metadata services (169.254.169.254) hand out credentials there. */
const UNROUTABLE = ['169.254.0.0/16'];

/**
 * More IPv4 networks RUN steps must not reach, from the worker's STRATA_RUN_DENY_NETWORKS
 * (`10.5.0.0/16,172.20.0.7`): e.g. the network of a docker-compose deployment, where Temporal
 * and the registry are other containers' addresses, not the worker's own. Throws on a bad
 * entry; the worker checks it at start.
 */
export function deniedNetworks(env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  for (const raw of (env.STRATA_RUN_DENY_NETWORKS ?? '').split(',')) {
    const item = raw.trim();
    if (!item) continue;
    const m = /^(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?$/.exec(item);
    if (!m || !isIPv4(m[1]!) || (m[2] !== undefined && Number(m[2]) > 32)) {
      throw new EngineError('NETWORK_CONFIG', `STRATA_RUN_DENY_NETWORKS: ${JSON.stringify(item)} is not an IPv4 address or CIDR network`);
    }
    out.push(m[2] === undefined ? `${m[1]}/32` : item);
  }
  return out;
}

/** Whether IPv4 `address` lies in `cidr` (`A.B.C.D/N`, as deniedNetworks gives them). */
export function inNetwork(address: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/') as [string, string];
  if (!isIPv4(address) || !isIPv4(base)) return false;
  const n = Number(bits);
  const toInt = (a: string) => a.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
  const size = 2 ** (32 - n);
  return Math.floor(toInt(address) / size) === Math.floor(toInt(base) / size);
}

/**
 * Why a fetch the worker makes for a build (ADD's downloads and git clones) must not go to
 * `address`, or undefined when it may: the host itself (what RUN steps cannot reach either),
 * and the worker's STRATA_RUN_DENY_NETWORKS, where Temporal and the remote store may live.
 * A build holding network.host may reach both, as its `RUN --network=host` steps can.
 */
export function fetchRefusal(address: string, allowHost: boolean, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (allowHost) return undefined;
  if (isHostAddress(address)) return 'is this host (loopback, link-local or one of its own addresses)';
  const a = canonicalAddress(address);
  const denied = deniedNetworks(env).find((cidr) => inNetwork(a, cidr));
  return denied ? `is in ${denied}, a network this worker keeps builds from (STRATA_RUN_DENY_NETWORKS)` : undefined;
}

export interface StepNetwork {
  mode: NetworkMode;
  /** The namespace runc joins; undefined: runc makes an empty one (`none`) or uses the host's. */
  nsPath?: string;
  /** What the step's /etc/resolv.conf says. */
  resolvConf: string;
  /** Settles when the network is up: the step must not start before. */
  ready: Promise<void>;
  /** Stops slirp4netns and removes the namespace; safe to call more than once. */
  close(): Promise<void>;
}

/**
 * Makes the network of one step under `dir` (the step's private staging dir). The caller
 * must call close() in a finally. Start it early: the namespace and slirp4netns come up
 * while the caller mounts the rootfs and prepares the container; runContainer awaits
 * `ready` just before it starts the step.
 */
export async function startNetwork(mode: NetworkMode, dir: string): Promise<StepNetwork> {
  if (mode === 'host') return { mode, resolvConf: await hostResolvConf(), ready: Promise.resolve(), close: async () => {} };
  if (mode === 'none') return { mode, resolvConf: '', ready: Promise.resolve(), close: async () => {} };
  await fs.mkdir(dir, { recursive: true });
  const nsPath = path.join(dir, 'netns');
  await fs.writeFile(nsPath, '');
  let slirp: Slirp | undefined;
  let closed = false;
  const close = async () => {
    // The bind mount and slirp4netns each keep the namespace; both go at once. Closing the
    // exit fd is slirp4netns's signal to leave; SIGKILL if it lingers.
    const stopping = slirp;
    slirp = undefined;
    const stopSlirp = async () => {
      if (!stopping) return;
      stopping.stdio[4].destroy();
      const timer = setTimeout(() => stopping.kill('SIGKILL'), 2000);
      await stopping.catch(() => undefined);
      clearTimeout(timer);
    };
    const unmount = async () => {
      if (closed) return;
      closed = true;
      await unmountPath(nsPath);
    };
    await Promise.all([stopSlirp(), unmount()]);
  };
  try {
    // One process makes the namespace (kept alive by a bind mount on nsPath) and, inside it,
    // the routes the step cannot change (it has no CAP_NET_ADMIN).
    const unroutable = new Set([...hostAddresses().map((a) => `${a}/32`), ...UNROUTABLE, ...deniedNetworks()]);
    const routes = ['link set lo up', ...[...unroutable].map((r) => `route add prohibit ${r}`)];
    const made = await execa('unshare', [`--net=${nsPath}`, 'ip', '-batch', '-'], { input: routes.join('\n') + '\n', reject: false });
    if (made.exitCode !== 0) throw new EngineError('NETWORK_FAILED', `run step: make network namespace: ${made.stderr || made.message}`);
    slirp = spawnSlirp(nsPath);
    // A killed worker's slirp4netns sees its exit fd close and leaves; the store's reclaim
    // (owners.ts) also finds it by the namespace path on its command line.
    const ready = slirpReady(slirp);
    ready.catch(() => undefined); // awaited by the caller; a failure before that is not unhandled
    return { mode, nsPath, resolvConf: await defaultResolvConf(), ready, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * slirp4netns in its own sandbox (a mount namespace, no capability but binding low ports, a
 * seccomp filter); it writes to fd 3 once the tap is up, and leaves when fd 4 closes.
 */
function spawnSlirp(nsPath: string) {
  const args = ['--configure', `--mtu=${MTU}`, '--disable-host-loopback', '--enable-sandbox', '--enable-seccomp', '--netns-type=path', '--ready-fd=3', '--exit-fd=4', nsPath, TAP];
  return execa('slirp4netns', args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'], reject: false });
}
type Slirp = ReturnType<typeof spawnSlirp>;

function slirpReady(slirp: Slirp): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let stderr = '';
    (slirp.stdio[2] as Readable).on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    (slirp.stdio[3] as Readable).once('data', () => resolve());
    void slirp.then((r) =>
      reject(new EngineError('NETWORK_FAILED', `run step: slirp4netns exited before the network was up (${r.exitCode ?? r.signal ?? r.shortMessage}): ${stderr.trim()}`)),
    );
  });
}

/** The host's own IPv4 addresses other than loopback: its services listen there too. */
export function hostAddresses(): string[] {
  return Object.values(os.networkInterfaces())
    .flat()
    .filter((a): a is os.NetworkInterfaceInfo => !!a && a.family === 'IPv4' && !a.internal)
    .map((a) => a.address);
}

async function hostResolvConf(): Promise<string> {
  return fs.readFile('/etc/resolv.conf', 'utf8').catch(() => '');
}

/**
 * slirp's resolver, which forwards to the host's (even one on the host's loopback, such as
 * systemd-resolved's, which a step could not reach itself); the host's search domains and
 * options stay, as docker keeps them.
 */
async function defaultResolvConf(): Promise<string> {
  const kept = (await hostResolvConf()).split('\n').filter((l) => /^\s*(search|domain|options)\s/.test(l));
  return [`nameserver ${SLIRP_DNS}`, ...kept].join('\n') + '\n';
}

/** One spelling per IPv6 address (WHATWG URL's), and IPv4-mapped ones as IPv4. */
function canonicalAddress(address: string): string {
  let a = address.toLowerCase();
  if (isIPv6(a)) a = new URL(`http://[${a}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(a);
  if (mapped) {
    const hi = parseInt(mapped[1]!, 16);
    const lo = parseInt(mapped[2]!, 16);
    a = [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
  }
  return a;
}

/**
 * True for an address that is this host or its link: 0.0.0.0/8 and 127.0.0.0/8 (and `::`,
 * `::1`, IPv4-mapped forms of them), link-local 169.254.0.0/16 and fe80::/10, and the host's
 * own interface addresses. A build reaches none of them without network.host.
 */
export function isHostAddress(address: string): boolean {
  const a = canonicalAddress(address);
  if (isIPv4(a)) {
    const [first, second] = a.split('.').map(Number);
    if (first === 0 || first === 127 || (first === 169 && second === 254)) return true;
  } else if (isIPv6(a)) {
    if (a === '::' || a === '::1' || /^fe[89ab][0-9a-f]?:/.test(a)) return true;
  } else {
    return false;
  }
  return Object.values(os.networkInterfaces())
    .flat()
    .some((i) => !!i && (i.family === 'IPv6' ? new URL(`http://[${i.address.split('%')[0]}]/`).hostname.slice(1, -1) : i.address) === a);
}
