#!/usr/bin/env bash
# Installs what is missing, builds provisiond (Release) and starts it on its embedded
# default: RocksDB journal in ./data, simulation cluster, HTTP gateway on 127.0.0.1:8080.
# Extra arguments go to provisiond (see `provisiond --help`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
build="$root/build/release"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" --target provisiond kafka-dev-broker
exec "$build/app/provisiond" "$@"
