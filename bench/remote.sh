#!/usr/bin/env bash
# Remote cache benchmark (issue 14): bench/scenarios/mixed-40 built on a machine that starts
# empty, with the cache in a registry, then built again on another empty machine that finds
# every step there. Each "machine" is a STRATA_HOME of its own: a fresh `strata worker` and a
# fresh CLI store, sharing nothing but STRATA_REMOTE (Debian's docker-registry on a loopback
# port, a new repository each round). buildah does the same with a fresh storage per build and
# `--layers --cache-to/--cache-from` the registry. docker's classic builder has no registry
# cache (its --cache-from takes local images only): its column is its cold build, and its
# rebuild with its own local cache, for scale.
#   strata:  cold = build on worker 1 (empty);  cached = build on worker 2 (empty, remote cache)
#   buildah: cold = bud --cache-to REPO;        cached = bud --cache-from REPO (empty storage)
# Prints each time, the medians and strata's ratios. Not a test: nothing runs it in CI.
# Usage: bash bench/remote.sh [ROUNDS]   (after npm run build and scripts/setup.sh; default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
rounds=${1:-3}
work=$(mktemp -d /tmp/strata-bench-remote.XXXXXX)
export STRATA_TASK_QUEUE=strata-bench-remote-$$
export STRATA_TEMPORAL_PORT=$((20000 + RANDOM % 20000))
unset TEMPORAL_ADDRESS STRATA_REMOTE
strata() { node "$root/bin/strata.js" "$@"; }
have_buildah=false
command -v buildah >/dev/null && have_buildah=true
workers=()
tag="strata-bench-remote-$$"

cleanup() {
  set +e
  trap - EXIT INT TERM
  for w in "${workers[@]}"; do kill "$w" 2>/dev/null; done
  for w in "${workers[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$w" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$w" 2>/dev/null
  done
  STRATA_HOME="$work/server" strata server stop >/dev/null 2>&1
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null
  docker images --format '{{.Repository}}:{{.Tag}}' | grep -E "^$tag:" | xargs -r docker rmi -f >/dev/null 2>&1
  docker image prune -f --filter "label=strata-bench=$tag" >/dev/null 2>&1
  docker rmi -f "$tag-base:1" >/dev/null 2>&1
  awk -v w="$work" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/lib.sh
source bench/lib.sh

# A fresh `strata worker` on a store of its own, polling until killed; prints its pid.
start_worker() {
  local home=$1 remote=$2
  mkdir -p "$home"
  STRATA_HOME="$home" STRATA_REMOTE="$remote" TEMPORAL_ADDRESS="127.0.0.1:$STRATA_TEMPORAL_PORT" \
    node "$root/bin/strata.js" worker >"$home.log" 2>&1 &
  local pid=$!
  workers+=("$pid")
  for _ in $(seq 1 300); do grep -q 'polling task queue' "$home.log" 2>/dev/null && break; sleep 0.1; done
  echo "$pid"
}
stop_worker() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}
# A build from a CLI on an empty store of its own.
strata_build() {
  local remote=$1 ctx=$2
  STRATA_HOME="$work/cli-$RANDOM$RANDOM" STRATA_REMOTE="$remote" TEMPORAL_ADDRESS="127.0.0.1:$STRATA_TEMPORAL_PORT" \
    node "$root/bin/strata.js" build -t "$tag:1" "$ctx"
}
bah() { buildah --root "$1/root" --runroot "$1/run" --storage-driver overlay "${@:2}"; }

say "==> set-up in $work (load average $(load))"
mkdir -p "$work/times"
start_registry
# The base: busybox in the registry, as every tool must find it on an empty machine.
bash scripts/busybox-rootfs.sh "$work/busybox.tar"
STRATA_HOME="$work/server" strata server start >/dev/null
STRATA_HOME="$work/server" strata import --change 'CMD ["sh"]' "$work/busybox.tar" bench-base:1 >/dev/null
STRATA_HOME="$work/server" strata push bench-base:1 "$reg/bench/busybox:1" >/dev/null
mkdir -p "$work/ctx"
cp -r bench/scenarios/mixed-40/. "$work/ctx/"
sed -i "s|^FROM strata-bench-busybox|FROM $reg/bench/busybox:1|" "$work/ctx/Dockerfile"
# docker's classic builder reads the base from its own store.
docker import --change 'CMD ["sh"]' "$work/busybox.tar" "$reg/bench/busybox:1" >/dev/null

for r in $(seq 1 "$rounds"); do
  say "==> round $r/$rounds (load average $(load))"
  remote="$reg/strata-cache-$r"
  w1=$(start_worker "$work/w1-$r" "$remote")
  record() { echo "$3" >>"$work/times/$1.$2"; }
  record cold strata "$(seconds strata_build "$remote" "$work/ctx")"
  stop_worker "$w1"
  w2=$(start_worker "$work/w2-$r" "$remote")
  t=$(seconds strata_build "$remote" "$work/ctx")
  grep -q 'Using cache' "$work/last.log" || t=nan
  record cached strata "$t"
  stop_worker "$w2"
  if $have_buildah; then
    record cold buildah "$(seconds bah "$work/b1-$r" bud --layers --isolation chroot --tls-verify=false --cache-to "$reg/buildah-cache-$r" -t "$tag:1" "$work/ctx")"
    record cached buildah "$(seconds bah "$work/b2-$r" bud --layers --isolation chroot --tls-verify=false --cache-from "$reg/buildah-cache-$r" -t "$tag:1" "$work/ctx")"
    bah "$work/b1-$r" rmi --all --force >/dev/null 2>&1 || true
    bah "$work/b2-$r" rmi --all --force >/dev/null 2>&1 || true
  else
    record cold buildah nan
    record cached buildah nan
  fi
  record cold docker "$(seconds env DOCKER_BUILDKIT=0 docker build --no-cache --label "strata-bench=$tag" -t "$tag:1" "$work/ctx")"
  record cached docker "$(seconds env DOCKER_BUILDKIT=0 docker build --label "strata-bench=$tag" -t "$tag:1" "$work/ctx")"
done

printf '%-40s %9s %9s %9s %15s %14s\n' build strata buildah docker strata/buildah strata/docker
for kind in cold cached; do
  s=$(median "$work/times/$kind.strata")
  b=$(median "$work/times/$kind.buildah")
  d=$(median "$work/times/$kind.docker")
  label="mixed-40, $kind (empty machine)"
  [ "$kind" = cached ] && label="mixed-40, cached (empty machine + registry)"
  printf '%-40s %9s %9s %9s %15s %14s\n' "$label" "$s" "$b" "$d" "$(ratio "$s" "$b")" "$(ratio "$s" "$d")"
done
for kind in cold cached; do
  echo "$kind runs: strata $(tr '\n' ' ' <"$work/times/$kind.strata")| buildah $(tr '\n' ' ' <"$work/times/$kind.buildah")| docker $(tr '\n' ' ' <"$work/times/$kind.docker")"
done
echo "docker's classic builder has no registry cache: its cached figure is a rebuild with its local cache, on a machine that is not empty"
echo "medians of $rounds rounds; load average $(load) at the end; $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo)"
