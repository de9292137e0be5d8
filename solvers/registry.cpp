#include "solvers/registry.hpp"

#include <stdexcept>

namespace sdekit {

const std::vector<SamplerInfo>& sampler_registry() {
  static const std::vector<SamplerInfo> reg = {
      {"euler-maruyama", "Euler-Maruyama on the reverse SDE (any SDE)", make_euler_maruyama},
      {"euler", "Euler on the probability-flow ODE (Boost.Odeint)", make_euler},
      {"heun", "Heun (RK2) on the probability-flow ODE (Boost.Odeint)", make_heun},
      {"rk4", "classical Runge-Kutta 4 on the probability-flow ODE (Boost.Odeint)", make_rk4},
      {"ancestral", "DDPM ancestral sampling, posterior or transition variance", make_ancestral},
      {"ddim", "DDIM(eta); eta = 0 is deterministic (= DPM-Solver-1)", make_ddim},
  };
  return reg;
}

std::unique_ptr<Sampler> make_sampler(std::string_view name, const SamplerOptions& options) {
  std::string valid;
  for (const auto& s : sampler_registry()) {
    if (s.name == name) return s.make(options);
    valid += (valid.empty() ? "" : ", ") + s.name;
  }
  throw std::invalid_argument("unknown sampler '" + std::string(name) + "'; valid: " + valid);
}

AncestralVariance parse_ancestral_variance(std::string_view name) {
  if (name == "posterior") return AncestralVariance::Posterior;
  if (name == "transition") return AncestralVariance::Transition;
  throw std::invalid_argument("unknown ancestral variance '" + std::string(name) +
                              "'; valid: posterior, transition");
}

std::string ancestral_variance_name(AncestralVariance v) {
  return v == AncestralVariance::Posterior ? "posterior" : "transition";
}

}  // namespace sdekit
