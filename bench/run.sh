#!/usr/bin/env bash
# The benchmark runner: builds each scenario in bench/scenarios/ with strata, docker's classic
# builder and buildah in the same run, from the same busybox base, and prints wall times and
# strata's ratio to each. Usage: bash bench/run.sh [SCENARIO...]   (after scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d /tmp/strata-bench.XXXXXX)
export STRATA_HOME="$work/home" STRATA_TASK_QUEUE=strata-bench
export STRATA_TEMPORAL_PORT=$((20000 + RANDOM % 20000))
unset TEMPORAL_ADDRESS
base=strata-bench-busybox:latest
strata() { node "$root/bin/strata.js" "$@"; }
cleanup() {
  # The worker's graceful shutdown needs the server: stop it first, and never wait forever.
  if [ -n "${worker_pid:-}" ]; then
    kill "$worker_pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$worker_pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$worker_pid" 2>/dev/null || true
  fi
  strata server stop >/dev/null 2>&1 || true
  docker rmi -f "$base" >/dev/null 2>&1 || true
  buildah rmi -f "localhost/$base" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

bash scripts/busybox-rootfs.sh "$work/busybox.tar"
strata server start >/dev/null
strata import --change 'CMD ["sh"]' "$work/busybox.tar" "$base" >/dev/null
docker import --change 'CMD ["sh"]' "$work/busybox.tar" "$base" >/dev/null
# buildah has no import: it takes docker's copy of the base.
docker save -o "$work/base.tar" "$base" && buildah pull -q "docker-archive:$work/base.tar" >/dev/null 2>&1 || echo "buildah: could not load the base; its column will read nan" >&2
# node itself, not the shell function: $! must be the worker process.
node "$root/bin/strata.js" worker >"$work/worker.log" 2>&1 &
worker_pid=$!
sleep 3

seconds() { local s e; s=$(date +%s.%N); "$@" >"$work/last.log" 2>&1 || { cat "$work/last.log" >&2; return 1; }; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }'; }
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || mapfile -t scenarios < <(ls bench/scenarios)
printf '%-20s %10s %10s %10s %14s %14s\n' scenario strata docker buildah strata/docker strata/buildah
for name in "${scenarios[@]}"; do
  dir="bench/scenarios/$name"
  t_strata=$(seconds strata build "$dir")
  t_docker=$(DOCKER_BUILDKIT=0 seconds docker build --no-cache --force-rm -q -t "strata-bench-result:$name" "$dir")
  docker rmi "strata-bench-result:$name" >/dev/null 2>&1 || true
  # buildah builds independent stages concurrently only when told (--jobs).
  t_buildah=$(seconds buildah bud --layers=false --isolation=chroot --jobs 4 -q -t "strata-bench-result:$name" "$dir" 2>/dev/null || echo nan)
  buildah rmi "strata-bench-result:$name" >/dev/null 2>&1 || true
  ratio() { [ "$2" = nan ] && echo nan || awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
  printf '%-20s %9.2fs %9.2fs %10s %14s %14s\n' "$name" "$t_strata" "$t_docker" "$t_buildah" "$(ratio "$t_strata" "$t_docker")" "$(ratio "$t_strata" "$t_buildah")"
  # The price of RUN's default network (a namespace and slirp4netns per step), against none.
  if [ -e "$dir/compare-network" ]; then
    steps=$(grep -c '^RUN' "$dir/Dockerfile")
    t_none=$(seconds strata build --network none "$dir")
    t_default=$(seconds strata build --network default "$dir")
    awk -v d="$t_default" -v n="$t_none" -v k="$steps" -v s="$name" \
      'BEGIN { printf "%-20s network default %.2fs, none %.2fs: %+.0f ms per RUN step\n", s, d, n, (d - n) * 1000 / k }'
  fi
done
