#!/usr/bin/env bash
# Gathers, from this Debian machine, what a machine without sdekit's Debian packages needs to build
# it (a CUDA machine with a pip PyTorch: scripts/device_check.sh): the header-only dependencies
# (Eigen, the Boost headers sdekit includes, CLI11, nlohmann-json, xtensor/xtl/xsimd, stb_image_write,
# Catch2 v2), zlib's two headers and Google Benchmark (headers and shared library), with their
# CMake package files, into DIR laid out like /usr, so that CMAKE_PREFIX_PATH=DIR finds them.
# libzip and gnuplot stay behind (configure with -DSDEKIT_WITH_LIBZIP=OFF; plots then write their
# gnuplot scripts only).
#
#   bash scripts/pack_device_deps.sh [BUILD_DIR] [DIR]     (defaults: build, .device/deps)
#
# Boost is cut to the headers that the compiler read while building sdekit in BUILD_DIR (its
# dependency files), plus boost/config, preprocessor, mpl and type_traits whole (compiler-dependent
# branches). Prints the size; it must stay under the 64 MiB a device call carries.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${1:-build}
out=${2:-.device/deps}
[ -d "$build" ] || { echo "pack_device_deps: no build folder '$build' (run scripts/setup.sh)" >&2; exit 2; }
rm -rf "$out"
mkdir -p "$out/include" "$out/lib/x86_64-linux-gnu"

copy() {  # copy /usr/PATH... to $out/PATH..., following links
  for p in "$@"; do
    [ -e "/usr/$p" ] || { echo "pack_device_deps: /usr/$p is missing" >&2; exit 1; }
    mkdir -p "$out/$(dirname "$p")"
    cp -rL "/usr/$p" "$out/$p"
  done
}

copy include/eigen3 share/eigen3/cmake include/CLI share/cmake/CLI11 include/nlohmann \
     share/cmake/nlohmann_json include/xtensor include/xtl share/cmake/xtl \
     lib/x86_64-linux-gnu/cmake/xtensor include/catch2 lib/cmake/Catch2 lib/libCatch2WithMain.a \
     include/xsimd lib/x86_64-linux-gnu/cmake/xsimd \
     include/stb/stb_image_write.h include/zlib.h include/zconf.h include/benchmark \
     lib/x86_64-linux-gnu/cmake/benchmark lib/x86_64-linux-gnu/libbenchmark.so.1.7.1 \
     lib/x86_64-linux-gnu/cmake/Boost-1.74.0 lib/x86_64-linux-gnu/cmake/boost_headers-1.74.0 \
     lib/x86_64-linux-gnu/cmake/BoostDetectToolset-1.74.0.cmake \
     include/boost/config include/boost/preprocessor include/boost/mpl include/boost/type_traits
cp "$out/lib/x86_64-linux-gnu/libbenchmark.so.1.7.1" "$out/lib/x86_64-linux-gnu/libbenchmark.so.1debian"
cp "$out/lib/x86_64-linux-gnu/libbenchmark.so.1.7.1" "$out/lib/x86_64-linux-gnu/libbenchmark.so"
# benchmark_main is not used; its imported target must still find a file.
cp /usr/lib/x86_64-linux-gnu/libbenchmark_main.a "$out/lib/x86_64-linux-gnu/"

# The Boost headers the build included.
find "$build" -name '*.o.d' -print0 | xargs -0 cat | tr ' \\' '\n\n' |
  grep -o '^/usr/include/boost/[^:]*' | sort -u | while read -r h; do
    rel=${h#/usr/}
    mkdir -p "$out/$(dirname "$rel")"
    cp -L "$h" "$out/$rel"
  done
[ -d "$out/include/boost/numeric/odeint" ] ||
  { echo "pack_device_deps: the build in '$build' read no Boost.Odeint header" >&2; exit 1; }
echo "pack_device_deps: $(du -sh "$out" | cut -f1) in $out"
