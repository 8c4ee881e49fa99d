#!/usr/bin/env bash
# Registry benchmark: push and pull of a ~1 GB image (20 files of random bytes and some text,
# in 6 layers, built by strata) with strata and with skopeo in the same run, against Debian's
# docker-registry on a loopback port. Each run gets a fresh registry, so nothing is already
# there and no tool can reuse or mount a blob; strata's kept compressed blobs and records are
# removed before each of its cold pushes (skopeo compresses every time too).
#   push:  strata push                      vs  skopeo copy --dest-compress docker-archive:… docker://…
#   pull:  strata pull (fresh store)        vs  skopeo copy docker://… oci:DIR
# Prints each time, the medians and strata's ratio to skopeo (below 1: strata is faster).
# Usage: bash bench/registry.sh [RUNS]   (after scripts/setup.sh; default 3 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${1:-3}
work=$(mktemp -d /tmp/strata-bench-registry.XXXXXX)
export STRATA_HOME="$work/home" STRATA_TASK_QUEUE=strata-bench-registry
export STRATA_TEMPORAL_PORT=$((20000 + RANDOM % 20000))
unset TEMPORAL_ADDRESS
strata() { node "$root/bin/strata.js" "$@"; }
cleanup() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null || true
  if [ -n "${worker_pid:-}" ]; then
    kill "$worker_pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$worker_pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$worker_pid" 2>/dev/null || true
  fi
  strata server stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
source bench/lib.sh

echo "==> Making the image (20 x 48 MB random, 40 MB text, 6 layers)" >&2
ctx="$work/ctx"
for part in 1 2 3 4 5; do
  mkdir -p "$ctx/part$part"
  for f in 1 2 3 4; do head -c $((48 << 20)) /dev/urandom >"$ctx/part$part/random-$f.bin"; done
done
mkdir -p "$ctx/text"
for _ in $(seq 1 4); do cat "$root"/engine/*/*.ts; done >"$work/source.txt"
for i in $(seq 1 40); do
  # Each file differs a little (its number on every line), as sources of one project do.
  sed "s/^/$i /" "$work/source.txt" | { head -c $((1 << 20)); cat >/dev/null; } >"$ctx/text/source-$i.txt"
done
{
  echo 'FROM bench-busybox'
  for part in 1 2 3 4 5; do echo "COPY part$part/ /data/part$part/"; done
  echo 'COPY text/ /data/text/'
} >"$ctx/Dockerfile"
bash scripts/busybox-rootfs.sh "$work/busybox.tar"
strata server start >/dev/null
strata import --change 'CMD ["sh"]' "$work/busybox.tar" bench-busybox >/dev/null
node "$root/bin/strata.js" worker >"$work/worker.log" 2>&1 &
worker_pid=$!
sleep 3
strata build -t bench-image:1 "$ctx" >/dev/null
strata save -o "$work/image.tar" bench-image:1 2>/dev/null
rm -rf "$ctx"
size=$(stat -c %s "$work/image.tar")

seconds() { local s e; s=$(date +%s.%N); "$@" >"$work/last.log" 2>&1 || { cat "$work/last.log" >&2; return 1; }; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
forget_compressed() {
  # The records and the compressed blobs they name: the next strata push compresses again.
  for rec in "$STRATA_HOME"/registry/compressed/*.json; do
    [ -e "$rec" ] || continue
    hex=$(sed 's/.*"sha256:\([0-9a-f]*\)".*/\1/' "$rec")
    rm -f "$STRATA_HOME/blobs/sha256/$hex" "$rec"
  done
  rm -rf "$STRATA_HOME/registry/blobs"
}

sp=() kp=() sl=() kl=() warm=()
for run in $(seq 1 "$runs"); do
  start_registry
  forget_compressed
  sp+=("$(seconds strata push bench-image:1 "$reg/strata/bench:1")")
  pushed_size=$(skopeo inspect --raw --tls-verify=false "docker://$reg/strata/bench:1" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const m=JSON.parse(s);console.log(m.layers.reduce((n,l)=>n+l.size,0))})')
  kp+=("$(seconds skopeo copy --quiet --dest-compress --dest-tls-verify=false "docker-archive:$work/image.tar" "docker://$reg/skopeo/bench:1")")
  rm -rf "$work/pull-home" "$work/oci"
  sl+=("$(STRATA_HOME="$work/pull-home" seconds strata pull "$reg/strata/bench:1")")
  kl+=("$(seconds skopeo copy --quiet --src-tls-verify=false "docker://$reg/strata/bench:1" "oci:$work/oci:bench")")
  # A push of the same image to a new registry: the compressed blobs are kept, nothing is compressed.
  start_registry
  warm+=("$(seconds strata push bench-image:1 "$reg/strata/bench:1")")
  printf 'run %s: push strata %ss skopeo %ss | pull strata %ss skopeo %ss | warm push strata %ss\n' "$run" "${sp[-1]}" "${kp[-1]}" "${sl[-1]}" "${kl[-1]}" "${warm[-1]}" >&2
done

ms() { echo "$@" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '\nimage: %s MB as an uncompressed docker-archive; pushed by strata as %s MB of gzip layers; %s runs\n' "$((size / 1000000))" "$((pushed_size / 1000000))" "$runs"
printf '%-34s %10s %10s %14s\n' operation strata skopeo strata/skopeo
printf '%-34s %9ss %9ss %14s\n' 'push (cold: compress + upload)' "$(ms "${sp[@]}")" "$(ms "${kp[@]}")" "$(ratio "$(ms "${sp[@]}")" "$(ms "${kp[@]}")")"
printf '%-34s %9ss %10s %14s\n' 'push (compressed blobs kept)' "$(ms "${warm[@]}")" '-' '-'
printf '%-34s %9ss %9ss %14s\n' 'pull (strata also unpacks)' "$(ms "${sl[@]}")" "$(ms "${kl[@]}")" "$(ratio "$(ms "${sl[@]}")" "$(ms "${kl[@]}")")"
