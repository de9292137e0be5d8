#!/usr/bin/env bash
# One run on a CUDA machine that has CMake and a pip PyTorch but none of sdekit's Debian packages
# and no network: builds sdekit against that PyTorch's LibTorch with the dependencies gathered
# here by scripts/pack_device_deps.sh (carried in .device/deps), runs the CUDA tests, the rest of
# the test suite on that LibTorch, and the GPU benchmarks, and writes a report.
#
#   bash scripts/pack_device_deps.sh                   # here, once: fills .device/deps
#   bash scripts/device_check.sh [OUT_DIR]             # there (default OUT_DIR: $OUT, else out/device)
#
# OUT_DIR receives report.md (the summary), build.log, test_cuda.txt, ctest.txt and
# cuda_bench.json. Exits 0 when the CUDA tests pass. libzip is left out there
# (-DSDEKIT_WITH_LIBZIP=OFF: .npz statistics are refused with a message) and so is gnuplot (plots
# write their scripts only).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
out=${1:-${OUT:-out/device}}
mkdir -p "$out"
deps=$root/.device/deps
build=$root/build-cuda
report=$out/report.md
jobs=$(nproc)
log() { echo "$*" | tee -a "$report"; }
: > "$report"

[ -d "$deps/include/boost" ] || { log "device_check: no $deps (run scripts/pack_device_deps.sh where the Debian packages are)"; exit 2; }
py=python3
torch_prefix=$($py -c 'import torch; print(torch.utils.cmake_prefix_path)') || { log "device_check: python3 has no torch"; exit 2; }
log "# sdekit on CUDA: device check"
log ""
log "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
log "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
log "- PyTorch: $($py -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda, "cxx11abi", torch.compiled_with_cxx11_abi())')"
log "- compiler: $(c++ --version | head -1); CMake: $(cmake --version | head -1)"

# zlib: the system's library; its headers from here where the system has none.
zlib_lib=$(ldconfig -p | awk '/libz\.so\.1 .*x86-64/ {print $NF; exit}')
zlib_inc=/usr/include
[ -f /usr/include/zlib.h ] || zlib_inc=$deps/include
gen=()
command -v ninja > /dev/null && gen=(-G Ninja)

configure() {  # $1: C++ standard
  rm -rf "$build"
  cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$deps;$torch_prefix" -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
    -DSDEKIT_WITH_LIBZIP=OFF -DSDEKIT_WITH_NLOPT=OFF -DSDEKIT_CXX_STANDARD="$1" -DBoost_NO_SYSTEM_PATHS=ON \
    -DBoost_ROOT="$deps" -DZLIB_LIBRARY="$zlib_lib" -DZLIB_INCLUDE_DIR="$zlib_inc" \
    -DCMAKE_BUILD_RPATH="$deps/lib/x86_64-linux-gnu" >> "$out/build.log" 2>&1
}
primary=(sdekit test_cuda cuda_bench)
std=17
t0=$(date +%s)
if ! configure 17 || ! cmake --build "$build" -j"$jobs" --target "${primary[@]}" >> "$out/build.log" 2>&1; then
  log "- C++17 build failed (first errors below); trying C++20"
  grep -m 15 -E "error|Error" "$out/build.log" | sed 's/^/    /' | tee -a "$report"
  std=20
  if ! configure 20 || ! cmake --build "$build" -j"$jobs" --target "${primary[@]}" >> "$out/build.log" 2>&1; then
    log "- C++20 build failed too:"
    grep -E "error|Error" "$out/build.log" | tail -n 25 | sed 's/^/    /' | tee -a "$report"
    exit 1
  fi
fi
log "- built sdekit, test_cuda, cuda_bench with C++$std in $(( $(date +%s) - t0 )) s ($jobs jobs)"
# Everything else (the other tests, the CPU benchmarks): what fails to compile is listed.
t0=$(date +%s)
keep_going=(-k)
[ ${#gen[@]} -gt 0 ] && keep_going=(-k 0)
if cmake --build "$build" -j"$jobs" -- "${keep_going[@]}" >> "$out/build.log" 2>&1; then
  log "- built every other target in $(( $(date +%s) - t0 )) s"
else
  log "- some targets failed to build:"
  grep -E "^FAILED|error:" "$out/build.log" | sort -u | head -n 20 | sed 's/^/    /' | tee -a "$report"
fi

log ""
log "## CUDA tests (tests/test_cuda.cpp)"
"$build/tests/test_cuda" -r compact > "$out/test_cuda.txt" 2>&1
cuda_rc=$?
log "- exit code $cuda_rc; $(grep -E '^(Passed|Failed|All tests)' "$out/test_cuda.txt" | tail -1)"
grep -E "FAILED|failed" "$out/test_cuda.txt" | head -n 30 | sed 's/^/    /' | tee -a "$report"
log ""
log "CPU/CUDA agreement per sampler (max |x_cuda - x_cpu| / max |x_cpu|, 10 steps, ring2d, 64 rows):"
log ""
log "| sampler | SDE | dtype | relative difference |"
log "|---|---|---|---:|"
grep "^cuda-vs-cpu" "$out/test_cuda.txt" | awk '{printf "| %s | %s | %s | %.2g |\n", $2, $3, $4, $5}' | tee -a "$report"
log ""
log "Host-device synchronizations per step (fixed-step samplers, FiniteCheck::Final):"
log ""
grep "^syncs-per-step" "$out/test_cuda.txt" | awk '{printf "%s %s; ", $2, $3} END {print ""}' | tee -a "$report"

log ""
log "## The other tests on this LibTorch (CPU)"
(cd "$build" && timeout 300 ctest -j"$jobs" -LE cuda --timeout 240 > "$out/ctest.txt" 2>&1)
log "- $(grep -E 'tests passed' "$out/ctest.txt" | tail -1)"
grep -E "\(Failed\)|\(Timeout\)|\(SEGFAULT\)|Not Run" "$out/ctest.txt" | head -n 20 | sed 's/^/    /' | tee -a "$report"

log ""
log "## Benchmarks (bench/cuda_bench.cpp; medians of 3)"
export SDEKIT_UNET_TS=$root/data/fmnist/unet_ts.pt
[ -f "$SDEKIT_UNET_TS" ] || unset SDEKIT_UNET_TS
timeout 240 "$build/bench/cuda_bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
  --benchmark_out="$out/cuda_bench.json" --benchmark_out_format=json > "$out/cuda_bench.txt" 2>&1
grep -E "_median" "$out/cuda_bench.txt" | sed 's/^/    /' | tee -a "$report"
if [ -f "$root/data/fmnist/unet_ts.pt" ] && [ -f "$root/scripts/eager_dpmpp2m.py" ]; then
  log ""
  log "Plain PyTorch eager loop of the same DPM-Solver++ 2M update (scripts/eager_dpmpp2m.py):"
  timeout 120 $py "$root/scripts/eager_dpmpp2m.py" "$root/data/fmnist/unet_ts.pt" 2>&1 | sed 's/^/    /' | tee -a "$report"
fi
exit $cuda_rc
