#include "models/builtin.hpp"

#include <stdexcept>

namespace sdekit {

const std::vector<ModelInfo>& model_registry() {
  static const std::vector<ModelInfo> reg = {
      {"ring2d", "2-D mixture of 8 equal modes on a circle of radius 2, std 0.1 (exact score)"},
      {"gmm64", "64-D mixture of 5 anisotropic Gaussians, fixed seed (exact score)"},
      {"gmm:FILE.json", "Gaussian mixture read from JSON {weights, means, covariances|stds}"},
  };
  return reg;
}

GaussianMixture load_mixture(std::string_view spec) {
  if (spec == "ring2d") return GaussianMixture::ring2d();
  if (spec == "gmm64") return GaussianMixture::gmm64();
  if (spec.rfind("gmm:", 0) == 0) {
    const std::string path(spec.substr(4));
    if (path.empty()) throw std::invalid_argument("model 'gmm:' needs a file: gmm:FILE.json");
    return GaussianMixture::from_json_file(path);
  }
  throw std::invalid_argument("unknown model '" + std::string(spec) +
                              "'; valid: ring2d, gmm64, gmm:FILE.json");
}

}  // namespace sdekit
