#pragma once
// Built-in models by name: the analytic mixtures every experiment can start from.
#include <string>
#include <string_view>
#include <vector>

#include "models/gaussian_mixture.hpp"

namespace sdekit {

struct ModelInfo {
  std::string name;
  std::string summary;
};

/// ring2d, gmm64, and gmm:FILE.json.
const std::vector<ModelInfo>& model_registry();
/// The mixture behind a model spec: "ring2d", "gmm64" or "gmm:PATH" (a JSON file). Unknown
/// names throw std::invalid_argument listing the valid ones.
GaussianMixture load_mixture(std::string_view spec);

}  // namespace sdekit
