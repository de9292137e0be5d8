#pragma once
// Built-in models by name: the analytic mixtures every experiment can start from.
#include <string>
#include <string_view>
#include <vector>

#include "models/gaussian_mixture.hpp"

namespace sdekit {

/// An exact mixture by name. `name` is the spec itself ("ring2d") or, for a kind that takes an
/// argument, its prefix and placeholder ("gmm:FILE.json": specs "gmm:" followed by a path).
struct ModelInfo {
  std::string name;
  std::string summary;
  GaussianMixture (*load)(std::string_view arg);  // arg: the text after the prefix, or empty
  /// "gmm:" for "gmm:FILE.json"; empty for a plain name.
  std::string prefix() const;
  bool matches(std::string_view spec) const;
};

/// ring2d, gmm64, and gmm:FILE.json: the only list of the exact mixtures.
const std::vector<ModelInfo>& model_registry();
/// The mixture behind a model spec: "ring2d", "gmm64" or "gmm:PATH" (a JSON file). Unknown
/// names throw std::invalid_argument listing the valid ones.
GaussianMixture load_mixture(std::string_view spec);

}  // namespace sdekit
