#!/usr/bin/env bash
# The benchmark runner: builds each scenario with strata, docker's classic builder
# (DOCKER_BUILDKIT=0) and buildah (`buildah bud --layers`), interleaved in one run, BENCH_ROUNDS
# times each (default 3), and prints medians with strata's ratio to each peer; then `strata
# save` of a 1 GB image against `docker save`, strata's layer commit (its tar hashed, never
# written) against `tar c DIR | sha256sum` and node's crypto on the same tar, and the strata
# worker's peak RSS (VmHWM). It leaves nothing behind: its worker, server, store, docker and
# buildah images, buildah's storage and mounts all go when it ends (Ctrl-C too).
#
#   npm run bench [-- SCENARIO...]   or   bash bench/run.sh [SCENARIO...]
#                                   after `npm run build` and scripts/setup.sh (buildah included);
#                                   dockerd must be running. BENCH_ROUNDS=N rounds (default 3).
#                                   With SCENARIOs named, the save and commit section runs only
#                                   when `save` is among them. Not a test: nothing runs it in CI.
#
# Scenarios: each directory of bench/scenarios/ (a file `target` there names a --target; a file
# `compare-network` adds strata runs with --network none and default), and three made here:
#   big-context     a 300 MB context of 10,000 files, half of them excluded by .dockerignore
#   cached-rebuild  mixed-40 built again with every step cached ("n/a" for strata until its
#                   build prints "Using cache": strata had no instruction cache when this was written)
#   late-copy       mixed-40 rebuilt after the source of its last COPY changed (same "n/a" rule)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
rounds=${BENCH_ROUNDS:-3}
work=$(mktemp -d /tmp/strata-bench.XXXXXX)
export STRATA_HOME="$work/home" STRATA_TASK_QUEUE=strata-bench
export STRATA_TEMPORAL_PORT=$((20000 + RANDOM % 20000))
unset TEMPORAL_ADDRESS
base=strata-bench-busybox:latest # the scenarios' FROM
tag="strata-bench-$$"
strata() { node "$root/bin/strata.js" "$@"; }
have_buildah=false
command -v buildah >/dev/null && have_buildah=true
# buildah's own storage in the run's directory: nothing of it outlives the run.
bah() { buildah --root "$work/buildah/root" --runroot "$work/buildah/run" --storage-driver overlay "$@"; }

cleanup() {
  set +e
  trap - EXIT INT TERM
  # The worker first: its graceful shutdown needs the server.
  strata worker stop --all >/dev/null 2>&1
  strata server stop >/dev/null 2>&1
  docker images --format '{{.Repository}}:{{.Tag}}' | grep -E "^$tag:" | xargs -r docker rmi -f >/dev/null 2>&1
  docker rmi -f "$base" >/dev/null 2>&1
  docker image prune -f --filter "label=strata-bench=$tag" >/dev/null 2>&1
  if $have_buildah && [ -d "$work/buildah" ]; then
    bah rm --all >/dev/null 2>&1
    bah rmi --all --force >/dev/null 2>&1
  fi
  # Whatever is still mounted under the run's directory (buildah's overlays, a killed step's).
  awk -v w="$work" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/lib.sh
source bench/lib.sh
record() { echo "$3" >>"$work/times/$1.$2"; }

mkdir -p "$work/times" "$work/ctx"
say "==> set-up in $work (load average $(load))"
load_start=$(load)
bash scripts/busybox-rootfs.sh "$work/busybox.tar"
strata server start >/dev/null
strata import --change 'CMD ["sh"]' "$work/busybox.tar" "$base" >/dev/null
docker import --change 'CMD ["sh"]' "$work/busybox.tar" "$base" >/dev/null
if $have_buildah; then
  # buildah has no import: it takes docker's copy of the base.
  docker save -o "$work/base.tar" "$base"
  bah pull -q "docker-archive:$work/base.tar" >/dev/null 2>&1 || {
    say "buildah: could not load the base; its column reads nan"
    have_buildah=false
  }
else
  say "buildah is not installed (apt-get install -y buildah): its column reads nan"
fi
strata worker start >/dev/null
worker_pid=$(strata worker status | sed -n 's/^pid \([0-9]*\): task queue "strata-bench".*/\1/p' | head -1)
rss_mb() { awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$worker_pid/status" 2>/dev/null || echo "?"; }
# The cache's own flag, once strata has one: cold scenarios are built without the cache.
strata_nocache=()
strata build --help | grep -q -- '--no-cache' && strata_nocache=(--no-cache)

scenarios=()
with_save=false
for a in "$@"; do
  if [ "$a" = save ]; then with_save=true; else scenarios+=("$a"); fi
done
if [ $# -eq 0 ]; then
  mapfile -t scenarios < <(ls bench/scenarios)
  scenarios+=(big-context cached-rebuild late-copy)
  with_save=true
fi

# The scenarios' contexts are copies: late-copy edits its own, big-context is made here.
for name in "${scenarios[@]}"; do
  case "$name" in
    big-context)
      say "==> making the 300 MB context (10,000 files, 5,000 of them excluded)"
      d="$work/ctx/big-context"
      mkdir -p "$d/kept" "$d/excluded"
      for i in $(seq 1 50); do
        mkdir -p "$d/kept/$i" "$d/excluded/$i"
        for j in $(seq 1 100); do
          head -c 30000 /dev/urandom >"$d/kept/$i/f$j"
          head -c 30000 /dev/urandom >"$d/excluded/$i/f$j"
        done
      done
      printf 'excluded\n' >"$d/.dockerignore"
      printf 'FROM strata-bench-busybox\nCOPY . /ctx/\n' >"$d/Dockerfile"
      ;;
    cached-rebuild | late-copy) cp -r bench/scenarios/mixed-40 "$work/ctx/$name" ;;
    *)
      [ -d "bench/scenarios/$name" ] || { say "no scenario $name"; exit 2; }
      cp -r "bench/scenarios/$name" "$work/ctx/$name"
      ;;
  esac
done

# One build of a scenario by one tool: cold (no cache), or with the cache for the rebuilds.
build() {
  local tool=$1 name=$2 dir="$work/ctx/$2" extra=() cached=false
  [ -f "$dir/target" ] && extra=(--target "$(cat "$dir/target")")
  case "$name" in cached-rebuild | late-copy) cached=true ;; esac
  case "$tool" in
    strata)
      if $cached; then strata build -t "$tag:$name" "${extra[@]}" "$dir"; else strata build "${strata_nocache[@]}" -t "$tag:$name" "${extra[@]}" "$dir"; fi
      ;;
    docker)
      if $cached; then
        DOCKER_BUILDKIT=0 docker build --force-rm --label "strata-bench=$tag" -t "$tag:$name" "${extra[@]}" "$dir"
      else
        DOCKER_BUILDKIT=0 docker build --no-cache --force-rm --label "strata-bench=$tag" -t "$tag:$name" "${extra[@]}" "$dir"
      fi
      ;;
    buildah)
      # --jobs: buildah builds independent stages concurrently only when told.
      if $cached; then bah bud --layers --isolation chroot --jobs 4 -t "$tag:$name" "${extra[@]}" "$dir"; else bah bud --layers --no-cache --isolation chroot --jobs 4 -t "$tag:$name" "${extra[@]}" "$dir"; fi
      ;;
  esac
}
# What a cold build leaves is removed at once (1 GB images add up); the rebuilds keep theirs.
drop() {
  local tool=$1 name=$2
  case "$name" in cached-rebuild | late-copy) return 0 ;; esac
  case "$tool" in
    strata) strata rmi "$tag:$name" >/dev/null 2>&1 || true ;;
    docker) docker rmi "$tag:$name" >/dev/null 2>&1 || true ;;
    buildah) bah rmi -f "$tag:$name" >/dev/null 2>&1 || true ;;
  esac
}

tools=(strata docker buildah)
for r in $(seq 1 "$rounds"); do
  say "==> round $r/$rounds (load average $(load))"
  for name in "${scenarios[@]}"; do
    # Each round starts with another tool, so none always runs on the others' page cache.
    for k in 0 1 2; do
      tool=${tools[$(((k + r) % 3))]}
      [ "$tool" = buildah ] && ! $have_buildah && { record "$name" buildah nan; continue; }
      case "$name" in
        cached-rebuild | late-copy)
          # The first round fills each tool's cache (untimed).
          [ "$r" = 1 ] && { build "$tool" "$name" >"$work/warm.log" 2>&1 || { say "$tool: warm-up of $name failed"; tail -20 "$work/warm.log" >&2; }; }
          [ "$name" = late-copy ] && echo "late-$r-$RANDOM" >"$work/ctx/late-copy/late.txt"
          ;;
      esac
      t=$(seconds build "$tool" "$name")
      if [ "$tool" = strata ] && [ "$t" != nan ]; then
        case "$name" in cached-rebuild | late-copy) grep -q 'Using cache' "$work/last.log" || t=n/a ;; esac
      fi
      record "$name" "$tool" "$t"
      drop "$tool" "$name"
    done
    [ "$r" = 1 ] && echo "$name $(rss_mb)" >>"$work/times/rss"
    # The price of RUN's default network (a namespace and slirp4netns per step), against none.
    if [ "$r" = 1 ] && [ -e "$work/ctx/$name/compare-network" ]; then
      steps=$(grep -c '^RUN' "$work/ctx/$name/Dockerfile")
      t_none=$(seconds strata build "${strata_nocache[@]}" --network none "$work/ctx/$name")
      t_default=$(seconds strata build "${strata_nocache[@]}" --network default "$work/ctx/$name")
      awk -v d="$t_default" -v n="$t_none" -v k="$steps" -v s="$name" \
        'BEGIN { printf "%s: network default %.2fs, none %.2fs: %+.0f ms per RUN step\n", s, d, n, (d - n) * 1000 / k }' >>"$work/times/network"
    fi
  done
done

if $with_save; then
# ---- save of a 1 GB image, and the commit of its layer ----
say "==> save and commit of a 1 GB layer"
mkdir -p "$work/ctx/save" && cp bench/scenarios/big-layer/Dockerfile "$work/ctx/save/"
strata build "${strata_nocache[@]}" -t "$tag:save" "$work/ctx/save" >"$work/last.log" 2>&1 || { cat "$work/last.log" >&2; exit 1; }
DOCKER_BUILDKIT=0 docker build --no-cache --force-rm --label "strata-bench=$tag" -q -t "$tag:save" "$work/ctx/save" >/dev/null
layer=$(du -s "$STRATA_HOME"/layers/*/diff | sort -n | tail -1 | cut -f2)
tar c -C "$layer" . >"$work/layer.tar"
for r in $(seq 1 "$rounds"); do
  record save strata "$(seconds strata save -o "$work/strata-save.tar" "$tag:save")"
  record save docker "$(seconds docker save -o "$work/docker-save.tar" "$tag:save")"
  save_bytes=$(stat -c %s "$work/strata-save.tar" 2>/dev/null || echo 0)
  rm -f "$work/strata-save.tar" "$work/docker-save.tar"
  record commit tar-sha256sum "$(seconds sh -c "tar c -C '$layer' . | sha256sum >/dev/null")"
  record commit node-crypto "$(node bench/hash.mjs file "$work/layer.tar" 2>/dev/null || echo nan)"
  record commit strata "$(node bench/hash.mjs layer "$layer" 2>/dev/null || echo nan)"
done
rm -f "$work/layer.tar"
fi
load_end=$(load)

# ---- the report ----
echo
printf '%-18s %9s %9s %9s %14s %15s\n' scenario strata docker buildah strata/docker strata/buildah
for name in "${scenarios[@]}"; do
  s=$(grep -q 'n/a' "$work/times/$name.strata" && echo n/a || median "$work/times/$name.strata")
  d=$(median "$work/times/$name.docker")
  b=$(median "$work/times/$name.buildah")
  printf '%-18s %9s %9s %9s %14s %15s\n' "$name" "$s" "$d" "$b" "$(ratio "$s" "$d")" "$(ratio "$s" "$b")"
done
# Every run's time, in round order: how far one run strays from the median.
for name in "${scenarios[@]}"; do
  printf '%-18s runs: strata %s | docker %s | buildah %s\n' "$name" "$(paste -sd' ' "$work/times/$name.strata")" "$(paste -sd' ' "$work/times/$name.docker")" "$(paste -sd' ' "$work/times/$name.buildah")"
done
if $with_save; then
s=$(median "$work/times/save.strata")
d=$(median "$work/times/save.docker")
mb=$((save_bytes / 1000000))
printf '%-18s %9s %9s %9s %14s %15s   (%s MB: strata %s MB/s, docker %s MB/s)\n' "save 1 GB image" "$s" "$d" - "$(ratio "$s" "$d")" - "$mb" \
  "$(awk -v m="$mb" -v t="$s" 'BEGIN { printf "%.0f", m / t }')" "$(awk -v m="$mb" -v t="$d" 'BEGIN { printf "%.0f", m / t }')"
c=$(median "$work/times/commit.strata")
n=$(median "$work/times/commit.node-crypto")
t=$(median "$work/times/commit.tar-sha256sum")
echo "commit of the 1 GB layer (its tar hashed): strata ${c}s, node crypto on the same tar ${n}s, tar c | sha256sum ${t}s; strata/node $(ratio "$c" "$n"), strata/tar $(ratio "$c" "$t")"
fi
[ -f "$work/times/network" ] && cat "$work/times/network"
echo "strata worker peak RSS (VmHWM) after each scenario of round 1: $(awk '{printf "%s%s %s MB", (NR > 1 ? ", " : ""), $1, $2}' "$work/times/rss"); at the end $(rss_mb) MB"
echo "medians of $rounds rounds; load average $load_start at the start, $load_end at the end; $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo)"
echo "$(docker version --format 'docker {{.Server.Version}}' 2>/dev/null), $($have_buildah && buildah --version | cut -d' ' -f1-3 || echo 'no buildah'), node $(node --version), $(uname -r)"
