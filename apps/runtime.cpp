#include "apps/runtime.hpp"

#include <dlfcn.h>
#include <malloc.h>

#include <ATen/Parallel.h>

#include <cstdlib>
#include <mutex>
#include <stdexcept>

namespace sdekit {

std::string tune_allocator() {
  if (const char* v = std::getenv("SDEKIT_MALLOC_TUNING"); v && std::string(v) == "0")
    return "allocator: glibc defaults (SDEKIT_MALLOC_TUNING=0)";
  for (const char* name : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"})
    if (std::getenv(name))
      return std::string("allocator: as the environment sets it (") + name + ")";
  const bool ok = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 &&
                  mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1 && mallopt(M_TOP_PAD, 64 << 20) == 1;
  return ok ? "allocator: mmap threshold 32 MiB, trim threshold 1 GiB, top pad 64 MiB"
            : "allocator: glibc refused the tuning; defaults kept";
}

void configure_threads(int threads) {
  if (threads < 0)
    throw std::invalid_argument("--threads must be >= 0 (0: one per core), got " +
                                std::to_string(threads));
  static std::once_flag interop;
  std::call_once(interop, [] {
    try {
      at::set_num_interop_threads(1);
    } catch (const std::exception&) {
      // Already started (a library user ran inter-op work first): left as it is.
    }
  });
  if (threads > 0) at::set_num_threads(threads);
  // OpenBLAS, where LibTorch's BLAS is OpenBLAS (looked up at run time: another BLAS has no such
  // call and needs nothing).
  // An OPENBLAS_NUM_THREADS set in the environment is the user's choice and is kept.
  using SetThreads = void (*)(int);
  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr)
    if (auto* set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
      set(1);
}

}  // namespace sdekit
