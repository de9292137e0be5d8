// PLACEHOLDER: replaced by the real implementation before this lands.
#include <stdexcept>

#include "solvers/samplers.hpp"

namespace sdekit {

std::unique_ptr<Sampler> make_dpm_solver(int, const SamplerOptions&) {
  throw std::logic_error("make_dpm_solver: not available");
}

std::unique_ptr<Sampler> make_dpm_solver_fast(const SamplerOptions&) {
  throw std::logic_error("make_dpm_solver_fast: not available");
}

}  // namespace sdekit
