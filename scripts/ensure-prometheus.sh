#!/usr/bin/env bash
# Make sure `promtool` and `prometheus` are on PATH (used by test/dashboard/).
# Idempotent: does nothing when both are already there. Otherwise installs the Debian
# `prometheus` package (2.42 on bookworm) WITHOUT starting its service: the tests run the
# binary themselves, as a child process with a temporary config and data directory.
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  echo "ensure-prometheus: $(prometheus --version 2>&1 | head -n1)"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-prometheus: promtool/prometheus not found and apt-get is unavailable;" >&2
  echo "  install Prometheus (https://prometheus.io/download/) and put both binaries on PATH." >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "ensure-prometheus: need root (or sudo) to apt-get install prometheus" >&2
    exit 1
  fi
fi

# The package's maintainer scripts call invoke-rc.d / deb-systemd-invoke to start the
# daemon. A policy-rc.d that answers 101 ("action forbidden") stops that, on machines
# with or without systemd. Only add it if none exists, and remove it afterwards.
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# temporary, added by leasepool scripts/ensure-prometheus.sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  ADDED_POLICY=1
fi
cleanup() {
  if [ "$ADDED_POLICY" = 1 ]; then $SUDO rm -f "$POLICY"; fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends: no node-exporter (another daemon) is needed.
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null

command -v promtool >/dev/null && command -v prometheus >/dev/null
echo "ensure-prometheus: installed $(prometheus --version 2>&1 | head -n1)"
