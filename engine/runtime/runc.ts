// RuncRuntime: runs one process in an OCI bundle with Debian's runc. The bundle's rootfs is
// the step's overlay mount; /etc/hosts and /etc/resolv.conf are bind-mounted read-only from
// files strata writes, so they are never committed.
// https://github.com/opencontainers/runtime-spec/blob/main/config.md
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { EngineError } from '../errors.js';
import type { StepNetwork } from './network.js';
import { seccompProfile } from './seccomp.js';

export interface ProcessSpec {
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  additionalGids: number[];
}

/** An OCI runtime-spec mount. */
export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export interface RunSpec {
  /** The rootfs (an overlay mount's merged dir). */
  rootfs: string;
  /** A private directory for the bundle and its generated files. */
  bundleDir: string;
  process: ProcessSpec;
  /**
   * The step's network (startNetwork; the caller closes it): `default`, a namespace of its own
   * with slirp4netns's NAT to the outside, not the host's loopback nor its addresses; `none`,
   * loopback only; `host`, the host's (the caller checks the entitlement).
   */
  network: StepNetwork;
  /** Receives stdout and stderr as they arrive. */
  onOutput: (chunk: Buffer) => void;
  signal?: AbortSignal;
  /** Kill the process after this long; the result says so. */
  timeoutMs?: number;
  /** Mounted after the standard ones (RUN --mount), in order. */
  mounts?: OciMount[];
}

export interface RunResult {
  exitCode: number;
  timedOut: boolean;
  cancelled: boolean;
}

/** Paths runc mounts over; when the image lacks one, runc creates it and it must not be committed. */
export const RUNTIME_MOUNTPOINTS = ['/proc', '/sys', '/dev', '/etc/hosts', '/etc/resolv.conf'];

// docker's default capability set for containers.
const CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

const HOSTNAME = 'strata';

/** Hidden from the step (an empty file or directory over them): host data, kernel memory, firmware. */
const MASKED_PATHS = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/interrupts',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/sys/devices/virtual/powercap',
  '/sys/firmware',
];
/** Readable, not writable: kernel knobs that are not namespaced. */
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

async function writeNetworkFiles(dir: string, net: StepNetwork): Promise<{ hosts: string; resolv: string }> {
  const hosts = path.join(dir, 'hosts');
  const resolv = path.join(dir, 'resolv.conf');
  await fs.writeFile(hosts, `127.0.0.1\tlocalhost ${HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n`);
  await fs.writeFile(resolv, net.resolvConf);
  return { hosts, resolv };
}

function runtimeConfig(spec: RunSpec, files: { hosts: string; resolv: string }): object {
  const net = spec.network;
  const namespaces: { type: string; path?: string }[] = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (net.mode !== 'host') namespaces.push(net.nsPath ? { type: 'network', path: net.nsPath } : { type: 'network' });
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: spec.process.uid, gid: spec.process.gid, additionalGids: spec.process.additionalGids },
      args: spec.process.args,
      env: spec.process.env,
      cwd: spec.process.cwd,
      capabilities: { bounding: CAPABILITIES, effective: CAPABILITIES, permitted: CAPABILITIES },
      // No exec gains privileges: a setuid binary (sudo, su) runs as its caller. Stricter than
      // docker's default (docs/compatibility.md): a step cannot climb back to root.
      noNewPrivileges: true,
    },
    root: { path: spec.rootfs, readonly: false },
    hostname: HOSTNAME,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/etc/hosts', type: 'bind', source: files.hosts, options: ['rbind', 'ro'] },
      { destination: '/etc/resolv.conf', type: 'bind', source: files.resolv, options: ['rbind', 'ro'] },
      ...(spec.mounts ?? []),
    ],
    linux: {
      namespaces,
      // Packet sockets only on the host's network, where routes protect nothing anyway.
      seccomp: seccompProfile(process.arch, { packetSockets: net.mode === 'host' }),
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
    },
  };
}

/**
 * Runs the process to completion and returns its exit code. Cancellation (signal) and the
 * timeout kill it; in every case the container is deleted before this returns.
 */
export async function runContainer(spec: RunSpec): Promise<RunResult> {
  await fs.mkdir(spec.bundleDir, { recursive: true });
  const files = await writeNetworkFiles(spec.bundleDir, spec.network);
  await fs.writeFile(path.join(spec.bundleDir, 'config.json'), JSON.stringify(runtimeConfig(spec, files)));
  // slirp4netns came up while the rootfs was prepared: the step must not start before it.
  await spec.network.ready;
  return runInBundle(spec);
}

async function runInBundle(spec: RunSpec): Promise<RunResult> {
  const id = `strata-${randomBytes(6).toString('hex')}`;
  let timedOut = false;
  let cancelled = false;
  const child = execa('runc', ['run', '--bundle', spec.bundleDir, id], { reject: false, stdin: 'ignore', buffer: false, all: true });
  child.all?.on('data', (chunk: Buffer) => spec.onOutput(chunk));
  const kill = () => void execa('runc', ['kill', id, 'KILL'], { reject: false });
  const onAbort = () => {
    cancelled = true;
    kill();
  };
  spec.signal?.addEventListener('abort', onAbort, { once: true });
  if (spec.signal?.aborted) onAbort();
  const timer = spec.timeoutMs
    ? setTimeout(() => {
        timedOut = true;
        kill();
      }, spec.timeoutMs)
    : undefined;
  try {
    const r = await child;
    if (r.failed && r.exitCode === undefined) {
      throw new EngineError('RUNC_FAILED', `run container: runc could not start: ${r.message}`);
    }
    return { exitCode: r.exitCode ?? -1, timedOut, cancelled };
  } finally {
    clearTimeout(timer);
    spec.signal?.removeEventListener('abort', onAbort);
    // `runc run` deletes the container when the process exits; this covers kills and crashes.
    await execa('runc', ['delete', '--force', id], { reject: false });
  }
}
