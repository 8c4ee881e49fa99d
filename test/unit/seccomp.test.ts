// The seccomp profile as data: what must be refused is, what a build needs is allowed, and
// clone's and personality's argument filters say what they mean.
import { AF_PACKET, ALLOWED_SYSCALLS, CLONE_NAMESPACE_FLAGS, CLONE_NAMESPACE_MASK, DENIED_SYSCALLS, seccompProfile } from '../../engine/runtime/seccomp.js';

const profile = seccompProfile('x64');
const rulesFor = (name: string) => profile.syscalls.filter((r) => r.names.includes(name));
const allowedUnconditionally = (name: string) => rulesFor(name).some((r) => r.action === 'SCMP_ACT_ALLOW' && !r.args);

// What the issue listed, and what docker's profile refuses a container without extra capabilities.
const MUST_REFUSE = [
  'unshare',
  'setns',
  'keyctl',
  'add_key',
  'request_key',
  'mount',
  'umount2',
  'pivot_root',
  'ptrace',
  'process_vm_readv',
  'process_vm_writev',
  'bpf',
  'perf_event_open',
  'kexec_load',
  'kexec_file_load',
  'init_module',
  'finit_module',
  'delete_module',
  'open_by_handle_at',
  'name_to_handle_at',
  'swapon',
  'swapoff',
  'reboot',
  'syslog',
  'acct',
  'settimeofday',
  'clock_settime',
  'adjtimex',
  'userfaultfd',
  'lookup_dcookie',
  'quotactl',
  'nfsservctl',
  'vm86',
  'vm86old',
  'iopl',
  'ioperm',
  'fanotify_init',
  'mbind',
  'set_mempolicy',
  'move_pages',
  'fsopen',
  'fsmount',
  'move_mount',
  'open_tree',
];

test.each(MUST_REFUSE)('%s is refused with EPERM and never allowed', (name) => {
  expect(allowedUnconditionally(name)).toBe(false);
  expect(rulesFor(name).filter((r) => r.action === 'SCMP_ACT_ALLOW')).toEqual([]);
  expect(rulesFor(name)).toContainEqual(expect.objectContaining({ action: 'SCMP_ACT_ERRNO', errnoRet: 1 }));
});

test('no syscall is both on the allow list and the deny list', () => {
  expect(ALLOWED_SYSCALLS.filter((n) => DENIED_SYSCALLS.includes(n))).toEqual([]);
  expect(new Set(ALLOWED_SYSCALLS).size).toBe(ALLOWED_SYSCALLS.length);
});

test.each(['read', 'write', 'openat', 'execve', 'fork', 'vfork', 'wait4', 'mmap', 'connect', 'chroot', 'setuid', 'chown', 'futex', 'getrandom', 'statx', 'rseq'])(
  '%s, which builds need, is allowed',
  (name) => expect(allowedUnconditionally(name)).toBe(true),
);

test('socket is allowed for every family but AF_PACKET, except on the host network', () => {
  expect(rulesFor('socket')).toEqual([{ names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: AF_PACKET, op: 'SCMP_CMP_NE' }] }]);
  expect(rulesFor('socketcall')).toEqual([expect.objectContaining({ action: 'SCMP_ACT_ERRNO', errnoRet: 38 })]);
  const host = seccompProfile('x64', { packetSockets: true }).syscalls.filter((r) => r.names.includes('socket'));
  expect(host).toEqual([{ names: ['socket', 'socketcall'], action: 'SCMP_ACT_ALLOW' }]);
});

test('unknown syscalls answer ENOSYS, so programs take their fallbacks', () => {
  expect(profile.defaultAction).toBe('SCMP_ACT_ERRNO');
  expect(profile.defaultErrnoRet).toBe(38);
});

test('clone3 answers ENOSYS (its flags cannot be filtered) and clone is allowed only without namespace flags', () => {
  expect(rulesFor('clone3')).toEqual([{ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }]);
  const allow = rulesFor('clone').filter((r) => r.action === 'SCMP_ACT_ALLOW');
  expect(allow).toEqual([{ names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: CLONE_NAMESPACE_MASK, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] }]);
  expect(CLONE_NAMESPACE_MASK).toBe(0x7e020000);
  // each namespace flag, alone, has its EPERM rule
  for (const flag of Object.values(CLONE_NAMESPACE_FLAGS)) {
    expect(rulesFor('clone')).toContainEqual({
      names: ['clone'],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: 1,
      args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
    });
  }
  // a thread's flags (CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID) pass the mask
  expect(0x3d0f00 & CLONE_NAMESPACE_MASK).toBe(0);
  expect(seccompProfile('s390x').syscalls.find((r) => r.names.includes('clone') && r.args)!.args![0]!.index).toBe(1);
});

test('personality is allowed for Linux, 32-bit Linux, UNAME26 and the query only', () => {
  const values = rulesFor('personality').map((r) => (r.action === 'SCMP_ACT_ALLOW' && r.args?.[0]?.op === 'SCMP_CMP_EQ' ? r.args[0].value : 'other'));
  expect(values.sort((a, b) => Number(a) - Number(b))).toEqual([0, 8, 0x20000, 0x20008, 0xffffffff]);
});

test('the architectures are the host ABIs', () => {
  expect(seccompProfile('x64').architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
  expect(seccompProfile('arm64').architectures).toEqual(['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
});
