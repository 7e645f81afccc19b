#!/usr/bin/env bash
# Run node-postgres' pg-pool test suite twice: against pg-pool itself and against leasepool's
# drop-in `Pool` (through a one-line shim index.js), and print both results.
#
#   scripts/pg-pool-suite.sh <suite-dir>
#
# <suite-dir>: a folder outside this repository holding pg-pool's `test/` folder (packages/pg-pool/test
# of brianc/node-postgres, at the pg-pool version you compare with) and a node_modules with the
# suite's devDependencies and pg-pool itself, e.g.
#   npm install --prefix <suite-dir> mocha@11 expect.js@0.3.1 co@4.6.0 bluebird@3.7.2 lodash@4 pg-cursor pg-pool@<version>
# This script fetches nothing and copies nothing of the suite into the repository. It links
# <suite-dir>/node_modules/pg to this repository's pg, so that both runs (and the tests' own
# `require('pg')`) use one pg, as an application would. Database: PGHOST/PGUSER/PGDATABASE
# (default 127.0.0.1 / postgres / test).
set -euo pipefail
suite="$(cd "${1:?usage: $0 <suite-dir>}" && pwd)"
repo="$(cd "$(dirname "$0")/.." && pwd)"
[ -d "$suite/test" ] || { echo "no test/ folder in $suite" >&2; exit 2; }
[ -x "$suite/node_modules/.bin/mocha" ] || { echo "mocha is not installed in $suite/node_modules" >&2; exit 2; }
case "$suite/" in "$repo"/*) echo "the suite must live outside the repository" >&2; exit 2;; esac

export PGHOST="${PGHOST:-127.0.0.1}" PGUSER="${PGUSER:-postgres}" PGDATABASE="${PGDATABASE:-test}"
(cd "$repo" && node_modules/.bin/tsc -p tsconfig.build.json)
rm -rf "$suite/node_modules/pg" && ln -s "$repo/node_modules/pg" "$suite/node_modules/pg"

status=0
for variant in pg-pool leasepool; do
  dir="$suite/runs/$variant"
  rm -rf "$dir" && mkdir -p "$dir" && cp -r "$suite/test" "$dir/test"
  if [ "$variant" = pg-pool ]; then
    echo "module.exports = require('pg-pool')" > "$dir/index.js"
  else
    echo "module.exports = require('$repo/dist/adapters/pg').Pool" > "$dir/index.js"
  fi
  log="$suite/runs/$variant.log"
  (cd "$dir" && "$suite/node_modules/.bin/mocha" > "$log" 2>&1) || status=1
  counts="$(grep -E '^\s+[0-9]+ (passing|pending|failing)' "$log" | sed -E 's/ \([0-9a-z]+\)//' | tr -s ' ' | tr '\n' ',' | sed 's/,$//')"
  crashes="$(grep -c -E 'unhandledRejection|uncaughtError|uncaughtException' "$log" || true)"
  echo "$variant:${counts} (unhandled rejections / uncaught: $crashes) — log: $log"
done
exit "$status"
