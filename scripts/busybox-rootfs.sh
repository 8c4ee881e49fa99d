#!/usr/bin/env bash
# Writes a minimal rootfs tar built from Debian's static busybox: the base image for the
# hello example and the tests (no registry is reachable here, so we make our own base).
# Usage: scripts/busybox-rootfs.sh OUT.tar [BUSYBOX]
# BUSYBOX is another static busybox binary (e.g. Debian's arm64 one, which cannot run here:
# its applet links are those of the host's busybox, the same Debian version).
set -euo pipefail
out=${1:?usage: busybox-rootfs.sh OUT.tar [BUSYBOX]}
bb=${2:-/bin/busybox}
if ! file -L "$bb" 2>/dev/null | grep -q 'statically linked'; then
  # `file` may be missing; ldd says "not a dynamic executable" for a static binary.
  ldd "$bb" 2>&1 | grep -q 'not a dynamic executable' || { echo "busybox-rootfs: $bb is not static (install busybox-static)" >&2; exit 1; }
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
chmod 755 "$dir"
mkdir -p "$dir"/{bin,etc,tmp,root,home,var,proc,sys,dev}
chmod 1777 "$dir/tmp"
chmod 700 "$dir/root"
cp "$bb" "$dir/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
done
cat > "$dir/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$dir/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
nogroup:x:65534:
GROUP
# Fixed times and owners: the same busybox always gives the same tar.
find "$dir" -exec touch -h -d @0 {} +
tar -C "$dir" --numeric-owner --owner=0 --group=0 --sort=name -cf "$out" .
