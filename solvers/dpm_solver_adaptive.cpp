// PLACEHOLDER: replaced by the real implementation before this lands.
#include <stdexcept>

#include "solvers/samplers.hpp"

namespace sdekit {

std::unique_ptr<Sampler> make_dpm_solver_adaptive(int, const SamplerOptions&) {
  throw std::logic_error("make_dpm_solver_adaptive: not available");
}

}  // namespace sdekit
