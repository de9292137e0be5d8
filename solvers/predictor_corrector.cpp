// PLACEHOLDER: replaced by the real implementation before this lands.
#include <stdexcept>

#include "solvers/samplers.hpp"

namespace sdekit {

std::unique_ptr<Sampler> make_predictor_corrector(const SamplerOptions&) {
  throw std::logic_error("make_predictor_corrector: not available");
}

}  // namespace sdekit
