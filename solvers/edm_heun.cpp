// PLACEHOLDER: replaced by the real implementation before this lands.
#include <stdexcept>

#include "solvers/samplers.hpp"

namespace sdekit {

std::unique_ptr<Sampler> make_edm_heun(const SamplerOptions&) {
  throw std::logic_error("make_edm_heun: not available");
}

}  // namespace sdekit
