#!/usr/bin/env bash
# The whole suite: installs what is missing, lints (npm run lint: the engine's folder graph,
# eslint with the floor plan's fences), starts dockerd (the verifier) when none runs, runs
# jest, stops what it started, and ends with jest's totals on one line.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
# Lint first: it takes a minute at most (eslint caches what it checked), the suite far longer.
if ! npm run --silent lint; then
  echo "lint failed: see above (npm run lint)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

run_dir=$(mktemp -d /tmp/strata-test-run.XXXXXX)
dockerd_pid=""
cleanup() {
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$dockerd_pid" 2>/dev/null
  fi
  rm -rf "$run_dir"
}
trap cleanup EXIT

if ! docker info >/dev/null 2>&1; then
  echo "==> Starting dockerd (--iptables=false --bridge=none) for the tests" >&2
  dockerd --iptables=false --bridge=none >"$run_dir/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start:" >&2; tail -20 "$run_dir/dockerd.log" >&2; exit 1; }
fi

node --experimental-vm-modules node_modules/jest/bin/jest.js --json --outputFile="$run_dir/results.json" "$@"
rc=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$run_dir/results.json" 2>/dev/null || echo "0 passed, 1 failed"
exit $rc
