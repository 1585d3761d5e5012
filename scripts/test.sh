#!/usr/bin/env bash
# Installs what is missing, builds everything (tests included) and runs the whole ctest suite.
# Extra arguments go to ctest (e.g. -L unit, -R journal).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
build="$root/build/test"
jobs=$(nproc)
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j "$jobs"
cd "$build"
exec ctest --output-on-failure -j "$jobs" --timeout 600 "$@"
