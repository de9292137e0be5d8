// PLACEHOLDER: replaced by the real implementation before this lands.
#include <stdexcept>

#include "solvers/samplers.hpp"

namespace sdekit {

std::unique_ptr<Sampler> make_dpmpp(const std::string&, const SamplerOptions&) {
  throw std::logic_error("make_dpmpp: not available");
}

}  // namespace sdekit
