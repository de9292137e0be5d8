// PLACEHOLDER: replaced by the real implementation before this lands.
#include <stdexcept>

#include "solvers/samplers.hpp"

namespace sdekit {

std::unique_ptr<Sampler> make_sde_dpmpp_2m(const SamplerOptions&) {
  throw std::logic_error("make_sde_dpmpp_2m: not available");
}

}  // namespace sdekit
