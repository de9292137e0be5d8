#pragma once
// The process's resources, set once at start-up: glibc's allocator tuned for large tensors, and
// one thread budget shared by LibTorch's intra-op pool, its inter-op pool and OpenBLAS.
#include <string>

namespace sdekit {

/// Keeps the blocks of large tensors in the heap instead of fresh mmap'd pages (which every model
/// call on a large batch would otherwise fault in again): mmap threshold at glibc's maximum
/// (32 MiB on 64-bit), trim threshold 1 GiB, top pad 64 MiB. Skipped when the environment sets
/// SDEKIT_MALLOC_TUNING=0 or any of glibc's own MALLOC_*_ variables. Returns a one-line account
/// of what was done.
std::string tune_allocator();

/// Runs tensor operations on `threads` intra-op threads (0: LibTorch's default, one per physical
/// core), keeps OpenBLAS single-threaded unless OPENBLAS_NUM_THREADS is set (LibTorch
/// parallelizes around its calls; a second pool of spinning BLAS threads would compete with it)
/// and the inter-op pool at one thread. The
/// inter-op pool can be sized once per process only; later calls leave it. Throws
/// std::invalid_argument for threads < 0.
void configure_threads(int threads);

}  // namespace sdekit
