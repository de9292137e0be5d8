// PLACEHOLDER: replaced by the real implementation before this lands.
#include <stdexcept>

#include "solvers/samplers.hpp"

namespace sdekit {

std::unique_ptr<Sampler> make_sra(const SamplerOptions&) {
  throw std::logic_error("make_sra: not available");
}

}  // namespace sdekit
