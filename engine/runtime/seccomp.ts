// The seccomp filter every RUN step runs under (runc's `linux.seccomp`), modelled on docker's
// default profile: an allow list, so a syscall nobody vetted is refused. What a build may
// do is the ordinary life of a process (files, sockets, threads, signals, time reading);
// what it may not is reach past its sandbox: new namespaces, mounts, the kernel keyring,
// other processes' memory, modules, eBPF, perf, clocks, reboot.
// https://github.com/opencontainers/runtime-spec/blob/main/config-linux.md#seccomp

const EPERM = 1;
const ENOSYS = 38;

/**
 * AF_PACKET: raw link-layer frames. In a step's own network namespace they would reach
 * slirp4netns past the namespace's `prohibit` routes (the worker's own addresses, link-local,
 * STRATA_RUN_DENY_NETWORKS), since packet sockets skip routing. Raw IP sockets (ping) are
 * routed, so CAP_NET_RAW stays as docker grants it. socket(2) is allowed for every other family
 * (libseccomp takes one action per syscall and argument: AF_PACKET gets the default ENOSYS).
 * x86's 32-bit socketcall(2) multiplexer
 * hides the family behind a pointer, so it is refused with ENOSYS (glibc then calls socket(2)).
 */
export const AF_PACKET = 17;

/**
 * clone(2) flags that make a namespace. A clone with any of them is refused; plain forks and
 * threads are not. CLONE_NEWNS 0x20000, NEWCGROUP 0x2000000, NEWUTS 0x4000000, NEWIPC
 * 0x8000000, NEWUSER 0x10000000, NEWPID 0x20000000, NEWNET 0x40000000 (linux/sched.h).
 */
export const CLONE_NAMESPACE_FLAGS = {
  CLONE_NEWNS: 0x00020000,
  CLONE_NEWCGROUP: 0x02000000,
  CLONE_NEWUTS: 0x04000000,
  CLONE_NEWIPC: 0x08000000,
  CLONE_NEWUSER: 0x10000000,
  CLONE_NEWPID: 0x20000000,
  CLONE_NEWNET: 0x40000000,
} as const;
export const CLONE_NAMESPACE_MASK = Object.values(CLONE_NAMESPACE_FLAGS).reduce((a, b) => a | b, 0) >>> 0;

/**
 * personality(2) values a process may set: Linux itself, its 32-bit flavour (PER_LINUX32),
 * UNAME26 and both, and 0xffffffff, which only reads the current one. Anything else (exec
 * domains, ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, …) is refused.
 */
export const PERSONALITY_ALLOWED = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

/**
 * Refused with EPERM, named so a reader sees the intent (the allow list alone would refuse
 * them too, with ENOSYS). Most need a capability a step lacks anyway; the filter is the
 * second wall, and the only one for those that need none (unshare of a user namespace,
 * keyctl, userfaultfd, perf, bpf where unprivileged use is on).
 */
export const DENIED_SYSCALLS = [
  // namespaces and mounts: the way out of the container's view of the world
  'unshare',
  'setns',
  'mount',
  'umount',
  'umount2',
  'pivot_root',
  'open_tree',
  'move_mount',
  'fsopen',
  'fsconfig',
  'fsmount',
  'fspick',
  'mount_setattr',
  // the kernel keyring is not namespaced: keys of the host's sessions live there
  'keyctl',
  'add_key',
  'request_key',
  // other processes' memory and state
  'ptrace',
  'process_vm_readv',
  'process_vm_writev',
  'kcmp',
  'pidfd_getfd',
  // kernel code, tracing and introspection
  'bpf',
  'perf_event_open',
  'kexec_load',
  'kexec_file_load',
  'init_module',
  'finit_module',
  'delete_module',
  'create_module',
  'get_kernel_syms',
  'query_module',
  'lookup_dcookie',
  'syslog',
  '_sysctl',
  'uselib',
  'ustat',
  // file handles bypass path-based confinement (the "shocker" escape)
  'open_by_handle_at',
  'name_to_handle_at',
  // the machine: swap, power, accounting, quotas, clocks, NFS server
  'swapon',
  'swapoff',
  'reboot',
  'acct',
  'quotactl',
  'quotactl_fd',
  'nfsservctl',
  'settimeofday',
  'stime',
  'clock_settime',
  'clock_settime64',
  'clock_adjtime',
  'clock_adjtime64',
  'adjtimex',
  'sethostname',
  'setdomainname',
  'vhangup',
  // page faults handled in user space make kernel races easy to win
  'userfaultfd',
  // hardware and legacy modes
  'iopl',
  'ioperm',
  'vm86',
  'vm86old',
  'modify_ldt',
  // NUMA placement of other processes' memory
  'mbind',
  'set_mempolicy',
  'set_mempolicy_home_node',
  'get_mempolicy',
  'migrate_pages',
  'move_pages',
  // watching the whole filesystem
  'fanotify_init',
  'fanotify_mark',
  // io_uring: a second syscall interface that bypasses this filter's view; docker dropped it too
  'io_uring_setup',
  'io_uring_enter',
  'io_uring_register',
];

/** What a build's processes may call, by name, on every architecture listed. */
export const ALLOWED_SYSCALLS = [
  // files and directories
  'access',
  'faccessat',
  'faccessat2',
  'chdir',
  'fchdir',
  'chmod',
  'fchmod',
  'fchmodat',
  'chown',
  'chown32',
  'fchown',
  'fchown32',
  'fchownat',
  'lchown',
  'lchown32',
  'chroot',
  'close',
  'close_range',
  'creat',
  'dup',
  'dup2',
  'dup3',
  'fadvise64',
  'fadvise64_64',
  'fallocate',
  'fcntl',
  'fcntl64',
  'fdatasync',
  'flock',
  'fstat',
  'fstat64',
  'fstatat64',
  'newfstatat',
  'fstatfs',
  'fstatfs64',
  'fsync',
  'ftruncate',
  'ftruncate64',
  'getcwd',
  'getdents',
  'getdents64',
  'link',
  'linkat',
  'lseek',
  '_llseek',
  'lstat',
  'lstat64',
  'mkdir',
  'mkdirat',
  'mknod',
  'mknodat',
  'open',
  'openat',
  'openat2',
  'pread64',
  'preadv',
  'preadv2',
  'pwrite64',
  'pwritev',
  'pwritev2',
  'read',
  'readahead',
  'readdir',
  'readlink',
  'readlinkat',
  'readv',
  'rename',
  'renameat',
  'renameat2',
  'rmdir',
  'sendfile',
  'sendfile64',
  'copy_file_range',
  'splice',
  'tee',
  'vmsplice',
  'stat',
  'stat64',
  'statfs',
  'statfs64',
  'statx',
  'symlink',
  'symlinkat',
  'sync',
  'syncfs',
  'sync_file_range',
  'truncate',
  'truncate64',
  'umask',
  'unlink',
  'unlinkat',
  'utime',
  'utimensat',
  'utimensat_time64',
  'utimes',
  'futimesat',
  'write',
  'writev',
  'oldfstat',
  'oldlstat',
  'oldstat',
  // extended attributes
  'getxattr',
  'lgetxattr',
  'fgetxattr',
  'setxattr',
  'lsetxattr',
  'fsetxattr',
  'listxattr',
  'llistxattr',
  'flistxattr',
  'removexattr',
  'lremovexattr',
  'fremovexattr',
  // watching and waiting on descriptors
  'epoll_create',
  'epoll_create1',
  'epoll_ctl',
  'epoll_wait',
  'epoll_pwait',
  'epoll_pwait2',
  'eventfd',
  'eventfd2',
  'inotify_init',
  'inotify_init1',
  'inotify_add_watch',
  'inotify_rm_watch',
  'poll',
  'ppoll',
  'ppoll_time64',
  'select',
  '_newselect',
  'pselect6',
  'pselect6_time64',
  'signalfd',
  'signalfd4',
  'timerfd_create',
  'timerfd_settime',
  'timerfd_settime64',
  'timerfd_gettime',
  'timerfd_gettime64',
  'pipe',
  'pipe2',
  'ioctl',
  'memfd_create',
  // asynchronous I/O (the old interface)
  'io_setup',
  'io_destroy',
  'io_getevents',
  'io_pgetevents',
  'io_pgetevents_time64',
  'io_submit',
  'io_cancel',
  // memory
  'brk',
  'madvise',
  'mincore',
  'mlock',
  'mlock2',
  'mlockall',
  'mmap',
  'mmap2',
  'mprotect',
  'mremap',
  'msync',
  'munlock',
  'munlockall',
  'munmap',
  'remap_file_pages',
  'pkey_alloc',
  'pkey_free',
  'pkey_mprotect',
  'membarrier',
  // processes and threads (clone and personality are allowed with arguments below)
  'execve',
  'execveat',
  'exit',
  'exit_group',
  'fork',
  'vfork',
  'wait4',
  'waitid',
  'waitpid',
  'getpid',
  'getppid',
  'gettid',
  'getpgid',
  'getpgrp',
  'setpgid',
  'getsid',
  'setsid',
  'set_tid_address',
  'set_robust_list',
  'get_robust_list',
  'rseq',
  'arch_prctl',
  'prctl',
  'seccomp',
  'get_thread_area',
  'set_thread_area',
  'futex',
  'futex_time64',
  'futex_waitv',
  'sched_yield',
  'sched_getaffinity',
  'sched_setaffinity',
  'sched_getattr',
  'sched_setattr',
  'sched_getparam',
  'sched_setparam',
  'sched_getscheduler',
  'sched_setscheduler',
  'sched_get_priority_max',
  'sched_get_priority_min',
  'sched_rr_get_interval',
  'sched_rr_get_interval_time64',
  'getpriority',
  'setpriority',
  'nice',
  'ioprio_get',
  'ioprio_set',
  'getrlimit',
  'ugetrlimit',
  'setrlimit',
  'prlimit64',
  'getrusage',
  'times',
  'getcpu',
  'pidfd_open',
  'pidfd_send_signal',
  'process_mrelease',
  'landlock_create_ruleset',
  'landlock_add_rule',
  'landlock_restrict_self',
  'restart_syscall',
  // credentials (within the capabilities the step has)
  'capget',
  'capset',
  'getuid',
  'getuid32',
  'geteuid',
  'geteuid32',
  'getgid',
  'getgid32',
  'getegid',
  'getegid32',
  'getgroups',
  'getgroups32',
  'setgroups',
  'setgroups32',
  'setuid',
  'setuid32',
  'setgid',
  'setgid32',
  'setreuid',
  'setreuid32',
  'setregid',
  'setregid32',
  'setresuid',
  'setresuid32',
  'setresgid',
  'setresgid32',
  'getresuid',
  'getresuid32',
  'getresgid',
  'getresgid32',
  'setfsuid',
  'setfsuid32',
  'setfsgid',
  'setfsgid32',
  // signals
  'kill',
  'tkill',
  'tgkill',
  'pause',
  'rt_sigaction',
  'rt_sigpending',
  'rt_sigprocmask',
  'rt_sigqueueinfo',
  'rt_sigreturn',
  'rt_sigsuspend',
  'rt_sigtimedwait',
  'rt_sigtimedwait_time64',
  'rt_tgsigqueueinfo',
  'sigaction',
  'sigaltstack',
  'signal',
  'sigpending',
  'sigprocmask',
  'sigreturn',
  'sigsuspend',
  'sgetmask',
  'ssetmask',
  // time (reading it, sleeping, timers)
  'alarm',
  'clock_getres',
  'clock_getres_time64',
  'clock_gettime',
  'clock_gettime64',
  'clock_nanosleep',
  'clock_nanosleep_time64',
  'getitimer',
  'setitimer',
  'gettimeofday',
  'nanosleep',
  'time',
  'timer_create',
  'timer_delete',
  'timer_getoverrun',
  'timer_gettime',
  'timer_gettime64',
  'timer_settime',
  'timer_settime64',
  // sockets (socket itself below: not every address family)
  'socketpair',
  'bind',
  'connect',
  'listen',
  'accept',
  'accept4',
  'getsockname',
  'getpeername',
  'getsockopt',
  'setsockopt',
  'sendto',
  'recvfrom',
  'sendmsg',
  'recvmsg',
  'sendmmsg',
  'recvmmsg',
  'recvmmsg_time64',
  'shutdown',
  // System V and POSIX IPC (the step has its own IPC namespace)
  'ipc',
  'msgget',
  'msgsnd',
  'msgrcv',
  'msgctl',
  'semget',
  'semop',
  'semtimedop',
  'semtimedop_time64',
  'semctl',
  'shmget',
  'shmat',
  'shmdt',
  'shmctl',
  'mq_open',
  'mq_unlink',
  'mq_timedsend',
  'mq_timedsend_time64',
  'mq_timedreceive',
  'mq_timedreceive_time64',
  'mq_notify',
  'mq_getsetattr',
  // the system, read only
  'uname',
  'olduname',
  'oldolduname',
  'sysinfo',
  'getrandom',
];

export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: 'SCMP_CMP_EQ' | 'SCMP_CMP_NE' | 'SCMP_CMP_MASKED_EQ';
}

export interface SeccompRule {
  names: string[];
  action: 'SCMP_ACT_ALLOW' | 'SCMP_ACT_ERRNO';
  errnoRet?: number;
  args?: SeccompArg[];
}

export interface SeccompProfile {
  defaultAction: 'SCMP_ACT_ERRNO';
  defaultErrnoRet: number;
  architectures: string[];
  syscalls: SeccompRule[];
}

/** The architectures a process on this host can call the kernel as (x86 has three ABIs). */
export function seccompArchitectures(arch: string = process.arch): string[] {
  if (arch === 'x64') return ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];
  if (arch === 'arm64') return ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'];
  if (arch === 'ia32') return ['SCMP_ARCH_X86'];
  return [];
}

/**
 * The profile runc installs before the step's first instruction. Unknown syscalls fail with
 * ENOSYS, not EPERM: a program then takes its fallback, as glibc does for clone3 and as it
 * will for syscalls newer kernels add. The allow list is what docker's default profile
 * grants a container without extra capabilities; clone may not make namespaces.
 */
export function seccompProfile(arch: string = process.arch, opts: { packetSockets?: boolean } = {}): SeccompProfile {
  const cloneFlagsArg = arch === 's390x' ? 1 : 0; // s390 swaps clone's first two arguments
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: ENOSYS,
    architectures: seccompArchitectures(arch),
    syscalls: [
      { names: ALLOWED_SYSCALLS, action: 'SCMP_ACT_ALLOW' },
      // A clone that makes no namespace; one that does is refused (below).
      { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: cloneFlagsArg, value: CLONE_NAMESPACE_MASK, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
      ...Object.values(CLONE_NAMESPACE_FLAGS).map((flag): SeccompRule => ({
        names: ['clone'],
        action: 'SCMP_ACT_ERRNO',
        errnoRet: EPERM,
        args: [{ index: cloneFlagsArg, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
      })),
      // clone3 passes its flags in memory, where a filter cannot look: ENOSYS makes glibc
      // (2.34 and later) fall back to clone, whose flags are checked above.
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
      ...PERSONALITY_ALLOWED.map((value): SeccompRule => ({ names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value, op: 'SCMP_CMP_EQ' }] })),
      { names: DENIED_SYSCALLS, action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
      ...(opts.packetSockets
        ? [{ names: ['socket', 'socketcall'], action: 'SCMP_ACT_ALLOW' as const }]
        : [
            { names: ['socket'], action: 'SCMP_ACT_ALLOW' as const, args: [{ index: 0, value: AF_PACKET, op: 'SCMP_CMP_NE' as const }] },
            { names: ['socketcall'], action: 'SCMP_ACT_ERRNO' as const, errnoRet: ENOSYS },
          ]),
    ],
  };
}
