#!/usr/bin/env bash
# Builds sdekit and runs every test under ctest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# The tests start sdekit under torchrun too (Debian's python3-torch ships it).
if ! command -v torchrun > /dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q python3-torch
fi
ctest --test-dir build --output-on-failure -j2
