#!/usr/bin/env bash
# Installs sdekit's Debian dependencies where missing, then configures and builds it in build/.
# Sourced by run.sh and test.sh; safe to run again (only missing packages are installed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(cmake g++ make libtorch-dev libopenblas0 libeigen3-dev libboost-dev catch2 libbenchmark-dev
          libcli11-dev nlohmann-json3-dev libxtensor-dev libzip-dev libstb-dev gnuplot-nox
          zlib1g-dev libnlopt-cxx-dev libgloo-dev dataset-fashion-mnist)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "sdekit: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
