#!/usr/bin/env bash
# The main job on the built-in default: sample the 2-D ring mixture with every sampler and
# compare the sample moments with the exact ones. Extra arguments go to `sdekit moments`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh >&2
exec build/apps/sdekit moments "$@"
