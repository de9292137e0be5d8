#!/usr/bin/env bash
# The main job on the built-in default: the convergence study of every sampler on the 64-d
# Gaussian mixture (error vs NFE against a 1e-10 reference, fitted orders), written to
# out/converge/. Extra arguments go to `sdekit converge`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh >&2
exec build/apps/sdekit converge "$@"
