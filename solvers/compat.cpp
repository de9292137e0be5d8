#include "solvers/compat.hpp"

#include <stdexcept>
#include <utility>
#include <vector>

#include "solvers/registry.hpp"

namespace sdekit {

Compat parse_compat(std::string_view name) {
  if (name == "none") return Compat::None;
  if (name == "k-diffusion") return Compat::KDiffusion;
  if (name == "dpm-solver") return Compat::DpmSolver;
  throw std::invalid_argument("unknown --compat preset '" + std::string(name) +
                              "'; valid: none, k-diffusion, dpm-solver");
}

std::string compat_name(Compat c) {
  switch (c) {
    case Compat::KDiffusion:
      return "k-diffusion";
    case Compat::DpmSolver:
      return "dpm-solver";
    case Compat::None:
      break;
  }
  return "none";
}

std::map<std::string, std::string> compat_sampler_options(Compat c, std::string_view name) {
  const std::string sampler = sampler_info(name).name;  // the base of "NAME:OPTION=VALUE"
  std::vector<std::pair<std::string, std::string>> preset;
  if (c == Compat::KDiffusion)
    preset = {{"lower-order-final", "to-zero"}, {"lms-start", "lower-order"}};
  if (c == Compat::DpmSolver) {
    preset = {{"singlestep-rule", "official"},
              {"dpmpp3m-reference", "true"},
              {"lower-order-final", "below-10"},
              {"max-growth", "inf"},
              {"factor-float32", "true"}};
    // The official sample()'s tolerances, for its adaptive solvers only (not dopri5 and kin).
    if (sampler == "dpm-solver-12" || sampler == "dpm-solver-23" || sampler == "dpmpp-12" ||
        sampler == "dpmpp-23") {
      preset.emplace_back("rtol", "0.05");
      preset.emplace_back("atol", "0.0078");
    }
  }
  std::map<std::string, std::string> out;
  const SamplerInfo& info = sampler_info(sampler);
  for (const auto& [name, value] : preset)
    for (const auto& o : info.options)
      if (o == name) out[name] = value;
  return out;
}

SamplerOptions compat_options(Compat c, std::string_view sampler) {
  return sampler_options_for(sampler, compat_sampler_options(c, sampler));
}

bool compat_to_zero(Compat c) {
  return c == Compat::KDiffusion;
}

}  // namespace sdekit
