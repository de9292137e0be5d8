#include "models/builtin.hpp"

#include <stdexcept>

namespace sdekit {

std::string ModelInfo::prefix() const {
  const auto colon = name.find(':');
  return colon == std::string::npos ? std::string() : name.substr(0, colon + 1);
}

bool ModelInfo::matches(std::string_view spec) const {
  const std::string p = prefix();
  return p.empty() ? spec == name : spec.rfind(p, 0) == 0;
}

const std::vector<ModelInfo>& model_registry() {
  static const std::vector<ModelInfo> reg = {
      {"ring2d", "2-D mixture of 8 equal modes on a circle of radius 2, std 0.1 (exact score)",
       [](std::string_view) { return GaussianMixture::ring2d(); }},
      {"gmm64", "64-D mixture of 5 anisotropic Gaussians, fixed seed (exact score)",
       [](std::string_view) { return GaussianMixture::gmm64(); }},
      {"gmm:FILE.json", "Gaussian mixture read from JSON {weights, means, covariances|stds}",
       [](std::string_view path) {
         if (path.empty()) throw std::invalid_argument("model 'gmm:' needs a file: gmm:FILE.json");
         return GaussianMixture::from_json_file(std::string(path));
       }},
  };
  return reg;
}

GaussianMixture load_mixture(std::string_view spec) {
  std::string valid;
  for (const auto& m : model_registry()) {
    if (m.matches(spec)) return m.load(spec.substr(m.prefix().size()));
    valid += (valid.empty() ? "" : ", ") + m.name;
  }
  throw std::invalid_argument("unknown model '" + std::string(spec) +
                              "'; valid exact mixtures: " + valid);
}

}  // namespace sdekit
