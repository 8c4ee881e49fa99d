// The platform strata builds for: the host's. There is no emulation, so an image for another
// architecture could not run its RUN steps here.

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const NODE_TO_OCI_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', ia32: '386' };

export function hostPlatform(): Platform {
  return { architecture: NODE_TO_OCI_ARCH[process.arch] ?? process.arch, os: 'linux' };
}

/** `linux/amd64`, `linux/arm/v7`. */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** BuildKit's predefined platform ARGs for a build whose build and target platform are `p`. */
export function platformArgs(p: Platform): Record<string, string> {
  const args: Record<string, string> = {};
  for (const prefix of ['TARGET', 'BUILD']) {
    args[`${prefix}PLATFORM`] = formatPlatform(p);
    args[`${prefix}OS`] = p.os;
    args[`${prefix}ARCH`] = p.architecture;
    args[`${prefix}VARIANT`] = p.variant ?? '';
  }
  return args;
}
