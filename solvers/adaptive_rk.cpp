// PLACEHOLDER: replaced by the real implementation before this lands.
#include <stdexcept>

#include "solvers/samplers.hpp"

namespace sdekit {

std::unique_ptr<Sampler> make_dopri5(const SamplerOptions&) {
  throw std::logic_error("make_dopri5: not available");
}

std::unique_ptr<Sampler> make_cash_karp(const SamplerOptions&) {
  throw std::logic_error("make_cash_karp: not available");
}

std::unique_ptr<Sampler> make_fehlberg78(const SamplerOptions&) {
  throw std::logic_error("make_fehlberg78: not available");
}

}  // namespace sdekit
