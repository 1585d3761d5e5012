#!/usr/bin/env bash
# Installs the Debian 12 packages provisiond needs to build, run and test, if any is missing.
# Run as root (or with sudo). Everything comes from Debian's own archive.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libcaf-dev librocksdb-dev libboost-dev libboost-program-options-dev
  nlohmann-json3-dev catch2 libssl-dev
  librdkafka-dev kcat libjemalloc-dev
  curl jq
  systemd  # systemd-analyze: the install test verifies the unit with it
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo "$0" "$@"
  fi
  echo "install-deps: missing packages (${missing[*]}) and not running as root" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
