#!/usr/bin/env bash
# Make sure the external tools the test suites drive are installed:
#   prometheus, promtool  (Debian package prometheus)  test/dashboard/
#   pgbouncer             (Debian package pgbouncer)   test/chaos/pgbouncer.test.ts
#   chromium              (Debian package chromium)    the lease inspector's browser tests (test/*/inspector-browser.test.ts,
#                                                      driven by playwright-core with executablePath /usr/bin/chromium)
# Idempotent: returns at once when every tool is there. Otherwise installs the missing packages
# in one apt-get run WITHOUT starting their services: the tests run the binaries themselves, as
# child processes with temporary configs on 127.0.0.1.
set -euo pipefail

# package:binary pairs; a package is needed when any of its binaries is missing.
TOOLS=(prometheus:prometheus prometheus:promtool pgbouncer:pgbouncer chromium:chromium)

found() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

missing=()
for pair in "${TOOLS[@]}"; do
  package="${pair%%:*}" binary="${pair##*:}"
  if ! found "$binary" && [[ ! " ${missing[*]-} " == *" $package "* ]]; then missing+=("$package"); fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "ensure-tools: prometheus, promtool, pgbouncer and chromium are installed"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-tools: missing ${missing[*]} and apt-get is unavailable: install them and put the binaries on PATH" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "ensure-tools: need root (or sudo) to apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

# The packages' maintainer scripts try to start their daemons. A policy-rc.d that answers 101
# ("action forbidden") stops that, with or without systemd. Only add it if none exists.
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# temporary, added by leasepool scripts/ensure-tools.sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  ADDED_POLICY=1
fi
cleanup() { if [ "$ADDED_POLICY" = 1 ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends: no node-exporter or other daemons.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Should a package have started a daemon anyway, stop it (pgbouncer would hold port 6432).
if command -v service >/dev/null 2>&1; then $SUDO service pgbouncer stop >/dev/null 2>&1 || true; fi

for pair in "${TOOLS[@]}"; do
  found "${pair##*:}" || { echo "ensure-tools: installed ${missing[*]} but ${pair##*:} is still missing" >&2; exit 1; }
done
echo "ensure-tools: installed ${missing[*]}"
