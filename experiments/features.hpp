#pragma once
// Feature spaces for Frechet distances and KID: the data space itself, or a TorchScript network
// given by the user (for example an Inception network exported from Python with
// torch.jit.script / torch.jit.trace), whose forward(x) maps a batch [n, ...] of samples to
// features [n, d].
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace sdekit {

class FeatureSpace {
 public:
  virtual ~FeatureSpace() = default;
  /// "data" or "torchscript:FILE".
  virtual std::string name() const = 0;
  /// Features of a batch x [n, ...] as float64 CPU [n, d]. Throws std::invalid_argument when the
  /// output is not [n, d] (naming what was expected and got) or not finite.
  virtual at::Tensor operator()(const at::Tensor& x) = 0;
};

/// One kind of feature space: its name ("data", or a prefix with a placeholder,
/// "torchscript:FILE.pt"), its one-line meaning, and its factory.
struct FeatureSpaceKind {
  std::string name;
  std::string summary;
  std::function<std::unique_ptr<FeatureSpace>(const std::string& spec, int64_t batch)> make;
  bool matches(const std::string& spec) const;
};

/// Every feature space make_feature_space accepts: the only list (help texts, `sdekit list` and
/// errors are generated from it).
const std::vector<FeatureSpaceKind>& feature_space_kinds();
/// "data | fmnist | torchscript:FILE.pt", for help texts.
std::string feature_space_help();
/// Checks a spec without loading anything: a known kind, and an existing file for the kinds
/// that name one. Throws std::invalid_argument listing the valid kinds, or naming the file.
void check_feature_space(const std::string& spec);

/// "data": the samples flattened to [n, prod(event shape)].
/// "torchscript:FILE": a TorchScript module loaded from FILE and run in inference mode on the
/// samples' device and dtype cast to float32 (the module's own dtype is not inspected; a
/// module that needs float64 can convert inside forward), in batches of `batch` rows.
/// Throws std::invalid_argument for an unknown kind or an unloadable file (naming it).
std::unique_ptr<FeatureSpace> make_feature_space(const std::string& spec, int64_t batch = 500);

}  // namespace sdekit
