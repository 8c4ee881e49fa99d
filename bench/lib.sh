# What the bench scripts share (sourced, never run): timing a command, medians and ratios, the
# load average, and a fresh Debian docker-registry on a loopback port. Each script sets $work
# (its temporary directory) before calling these.

say() { echo "$*" >&2; }

# Runs a command, prints its wall time in seconds, or "nan" (and its output) when it fails.
seconds() {
  local s e
  s=$(date +%s.%N)
  if ! "$@" >"$work/last.log" 2>&1; then
    say "failed: $*"
    tail -20 "$work/last.log" >&2
    echo nan
    return 0
  fi
  e=$(date +%s.%N)
  awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }'
}

# The median of the numbers in file $1, "nan" and "n/a" lines left out.
median() { sort -g "$1" 2>/dev/null | awk '$1 != "nan" && $1 != "n/a" {a[++n] = $1} END { if (n == 0) print "nan"; else if (n % 2) print a[(n + 1) / 2]; else printf "%.2f", (a[n / 2] + a[n / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || a == "n/a" || b == "n/a" || b == 0) print "-"; else printf "%.2f", a / b }'; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# A registry with nothing in it (the previous one, if any, stopped): sets $reg and $registry_pid.
registry_pid=""
start_registry() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null || true
  rm -rf "$work/registry"
  mkdir -p "$work/registry"
  local port=$((20000 + RANDOM % 20000))
  printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' "$work/registry/data" "$port" >"$work/registry/config.yml"
  /usr/bin/docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
  reg="127.0.0.1:$port"
}
