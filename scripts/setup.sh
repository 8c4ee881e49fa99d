#!/usr/bin/env bash
# Installs what strata needs and is missing: Debian packages, npm packages, the Temporal
# CLI and the Temporal server (built from source: no prebuilt download is reachable here),
# then builds strata.
# Safe to run again: each step is skipped when its result is present.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Debian packages: runc and overlay tools for builds, slirp4netns and iproute2 for their network; docker.io, docker-registry and skopeo as verifiers;
# busybox-static as the tests' base image; attr for xattrs and whiteouts; decompressors.
# git for ADD of git repositories; docker-compose (and its python3-yaml) checks docker-compose.yml;
# chromium for the Temporal Web UI tests (through playwright-core); openssl makes the mTLS
# certificates (docker/temporal-certs.sh, tls.test.ts); python3 writes the tests' odd archives;
# buildah is the benchmark's second peer (bench/run.sh, npm run bench); postgresql is the
# database of the Temporal server the fleet test runs on (test/helpers/temporalPostgres.ts).
packages=(runc slirp4netns iproute2 docker.io docker-registry skopeo busybox-static attr xz-utils bzip2 zstd file git docker-compose chromium openssl python3 buildah postgresql)
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

# Debian's arm64 busybox-static, unpacked (never run: no emulation here), for the tests'
# two-platform manifest lists. Fetched once through apt with its own lists (signed by
# Debian's archive key) in a cache dir, so the machine's apt configuration is left alone.
bb_arm64_dir="${XDG_CACHE_HOME:-$HOME/.cache}/strata/busybox-arm64"
if [ ! -x "$bb_arm64_dir/bin/busybox" ]; then
  say "Fetching Debian's busybox-static for arm64 (once)"
  apt_dir="$bb_arm64_dir.apt"
  rm -rf "$apt_dir" && mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/sources"
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nArchitectures: arm64\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' >"$apt_dir/sources/debian.sources"
  apt_opts=(-o "Dir::Etc::SourceParts=$apt_dir/sources" -o Dir::Etc::SourceList=/dev/null -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::Cache=$apt_dir/cache" -o APT::Architectures::=arm64 -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" -qq update
  (cd "$apt_dir" && apt-get "${apt_opts[@]}" -qq download busybox-static:arm64)
  rm -rf "$bb_arm64_dir" && mkdir -p "$bb_arm64_dir"
  dpkg-deb -x "$apt_dir"/busybox-static_*_arm64.deb "$bb_arm64_dir"
  rm -rf "$apt_dir"
  [ -x "$bb_arm64_dir/bin/busybox" ] || { echo "setup: no bin/busybox in the arm64 busybox-static package" >&2; exit 1; }
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

# The Temporal server v1.29.1 and its schema tool (`server`, `sql`) with the server's
# PostgreSQL schema: test/integration/fleet-postgres.test.ts runs the fleet on that server
# backed by PostgreSQL, as a cluster runs it. TEMPORAL_SERVER_DIR names a directory that
# already holds the three. GOFLAGS=-p=1: one compile at a time keeps the build's memory low.
server_version=v1.29.1
server_dir="${XDG_CACHE_HOME:-$HOME/.cache}/strata/temporal-server-$server_version"
if [ -n "${TEMPORAL_SERVER_DIR:-}" ]; then
  for f in server sql; do
    [ -x "$TEMPORAL_SERVER_DIR/$f" ] || { echo "setup: TEMPORAL_SERVER_DIR=$TEMPORAL_SERVER_DIR has no executable $f" >&2; exit 1; }
  done
  [ -d "$TEMPORAL_SERVER_DIR/schema/postgresql/v12" ] || { echo "setup: TEMPORAL_SERVER_DIR=$TEMPORAL_SERVER_DIR has no schema/postgresql/v12" >&2; exit 1; }
elif [ ! -x "$server_dir/server" ] || [ ! -x "$server_dir/sql" ] || [ ! -d "$server_dir/schema/postgresql/v12" ]; then
  go=$(command -v go || echo /usr/local/go/bin/go)
  [ -x "$go" ] || { echo "setup: Go is needed to build the Temporal server" >&2; exit 1; }
  mkdir -p "$server_dir"
  if [ ! -x "$server_dir/server" ] || [ ! -x "$server_dir/sql" ]; then
    say "Building the Temporal server $server_version and its SQL tool with go install (several minutes, once)"
    GOFLAGS=-p=1 GOBIN="$server_dir" "$go" install "go.temporal.io/server/cmd/server@$server_version" "go.temporal.io/server/cmd/tools/sql@$server_version"
  fi
  module_dir=$("$go" mod download -json "go.temporal.io/server@$server_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$module_dir/schema/postgresql/v12" ] || { echo "setup: no schema/postgresql/v12 in the Temporal server's module ($module_dir)" >&2; exit 1; }
  rm -rf "$server_dir/schema.tmp" && mkdir -p "$server_dir/schema.tmp/postgresql"
  cp -R "$module_dir/schema/postgresql/v12" "$server_dir/schema.tmp/postgresql/v12"
  chmod -R u+w "$server_dir/schema.tmp"
  rm -rf "$server_dir/schema" && mv "$server_dir/schema.tmp" "$server_dir/schema"
fi

say "Building strata"
npm run --silent build
