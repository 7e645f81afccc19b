#!/usr/bin/env bash
# Make sure the `pgbouncer` binary is available (used by test/chaos/pgbouncer.test.ts).
# Idempotent: does nothing when it is already there. Otherwise installs the Debian `pgbouncer`
# package WITHOUT starting its service: the tests run the binary themselves, as a child process
# with a temporary config on 127.0.0.1:<free port> in front of the local PostgreSQL.
set -euo pipefail

find_pgbouncer() {
  command -v pgbouncer 2>/dev/null || { [ -x /usr/sbin/pgbouncer ] && echo /usr/sbin/pgbouncer; } || true
}

BIN="$(find_pgbouncer)"
if [ -n "$BIN" ]; then
  echo "ensure-pgbouncer: $("$BIN" --version 2>&1 | head -n1)"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-pgbouncer: pgbouncer not found and apt-get is unavailable;" >&2
  echo "  install PgBouncer (>= 1.18) and put the binary on PATH." >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "ensure-pgbouncer: need root (or sudo) to apt-get install pgbouncer" >&2
    exit 1
  fi
fi

# The package's maintainer scripts try to start the daemon. A policy-rc.d that answers 101
# ("action forbidden") stops that, with or without systemd. Only add it if none exists.
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# temporary, added by leasepool scripts/ensure-pgbouncer.sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  ADDED_POLICY=1
fi
cleanup() {
  if [ "$ADDED_POLICY" = 1 ]; then $SUDO rm -f "$POLICY"; fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null

# Should the package have started a daemon anyway, stop it: it would hold port 6432 and is not ours.
if command -v service >/dev/null 2>&1; then $SUDO service pgbouncer stop >/dev/null 2>&1 || true; fi

BIN="$(find_pgbouncer)"
[ -n "$BIN" ] || { echo "ensure-pgbouncer: install finished but no pgbouncer binary found" >&2; exit 1; }
echo "ensure-pgbouncer: installed $("$BIN" --version 2>&1 | head -n1)"
