// PLACEHOLDER: replaced by the real implementation before this lands.
#include <stdexcept>

#include "solvers/samplers.hpp"

namespace sdekit {

std::unique_ptr<Sampler> make_annealed_langevin(const SamplerOptions&) {
  throw std::logic_error("make_annealed_langevin: not available");
}

}  // namespace sdekit
