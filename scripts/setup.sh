#!/usr/bin/env bash
# Installs what strata needs and is missing: Debian packages, npm packages, the Temporal
# CLI (built from source: no prebuilt download is reachable here), then builds strata.
# Safe to run again: each step is skipped when its result is present.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Debian packages: runc and overlay tools for builds; docker.io, docker-registry and skopeo as verifiers;
# busybox-static as the tests' base image; attr for xattrs and whiteouts; decompressors.
# git for ADD of git repositories; docker-compose (and its python3-yaml) checks docker-compose.yml;
# chromium for the Temporal Web UI tests (through playwright-core); openssl makes the mTLS
# certificates (docker/temporal-certs.sh, tls.test.ts); python3 writes the tests' odd archives.
packages=(runc docker.io docker-registry skopeo busybox-static attr xz-utils bzip2 zstd file git docker-compose chromium openssl python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "Installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages, from the lock file. Not `npm ci`: npm 11 with this registry writes locks
# without other platforms' optional packages, and `npm ci` then refuses its own lock.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "Installing npm packages"
  npm install --no-audit --no-fund --loglevel=error
fi

# The Temporal CLI v1.5.1 (newer tags carry a replace directive go install refuses).
cli_dir="${XDG_CACHE_HOME:-$HOME/.cache}/strata/temporal-v1.5.1"
if [ -n "${TEMPORAL_CLI:-}" ]; then
  [ -x "$TEMPORAL_CLI" ] || { echo "setup: TEMPORAL_CLI=$TEMPORAL_CLI is not executable" >&2; exit 1; }
elif [ ! -x "$cli_dir/temporal" ]; then
  go=$(command -v go || echo /usr/local/go/bin/go)
  [ -x "$go" ] || { echo "setup: Go is needed to build the Temporal CLI" >&2; exit 1; }
  say "Building the Temporal CLI v1.5.1 with go install (a few minutes, once)"
  mkdir -p "$cli_dir"
  GOBIN="$cli_dir" "$go" install github.com/temporalio/cli/cmd/temporal@v1.5.1
fi

say "Building strata"
npm run --silent build
