#pragma once
// Samplers by name. A new sampler is one .cpp with a factory plus one line in registry.cpp.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "solvers/samplers.hpp"

namespace sdekit {

struct SamplerInfo {
  std::string name;
  std::string summary;  // one line: what it integrates and how
  std::unique_ptr<Sampler> (*make)(const SamplerOptions&);
};

const std::vector<SamplerInfo>& sampler_registry();
/// Unknown names throw std::invalid_argument listing the valid ones.
std::unique_ptr<Sampler> make_sampler(std::string_view name, const SamplerOptions& options = {});

}  // namespace sdekit
