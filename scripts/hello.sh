#!/usr/bin/env bash
# The main job: install what is missing, build examples/hello through a Temporal workflow,
# save it as hello.tar, and say how to run it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
strata() { node bin/strata.js "$@"; }

if ! strata images | grep -q '^busybox '; then
  printf '\033[1m==> %s\033[0m\n' "Importing a busybox base image (from Debian's busybox-static)" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  bash scripts/busybox-rootfs.sh "$tmp/rootfs.tar"
  strata import --change 'CMD ["sh"]' "$tmp/rootfs.tar" busybox:latest >/dev/null
fi

strata build -t hello:latest --output type=docker,dest=hello.tar examples/hello
if [ -n "${TEMPORAL_ADDRESS:-}" ]; then
  where="on the Temporal server at $TEMPORAL_ADDRESS"
else
  where="on the embedded Temporal server; see it in the Web UI at http://127.0.0.1:$((${STRATA_TEMPORAL_PORT:-7233} + 1000))"
fi
cat <<MSG

hello.tar is ready. Load it into docker and run it:
    docker load -i hello.tar && docker run --rm hello:latest
The build ran $where
MSG
