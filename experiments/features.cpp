#include "experiments/features.hpp"

#include <torch/script.h>

#include <filesystem>
#include <sstream>

#include <stdexcept>
#include "networks/classifier.hpp"
#include "networks/loader.hpp"
#include "networks/module_check.hpp"

namespace sdekit {

namespace {

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

class DataSpace final : public FeatureSpace {
 public:
  std::string name() const override { return "data"; }
  at::Tensor operator()(const at::Tensor& x) override {
    if (x.dim() < 1 || x.size(0) < 1)
      throw std::invalid_argument("features 'data': expected a batch [n, ...], got " +
                                  shape_str(x.sizes()));
    return x.reshape({x.size(0), -1}).to(at::kCPU, at::kDouble);
  }
};

class TorchScriptSpace final : public FeatureSpace {
 public:
  TorchScriptSpace(std::string path, int64_t batch) : path_(std::move(path)), batch_(batch) {
    try {
      module_ = torch::jit::load(path_);
    } catch (const c10::Error& e) {
      throw std::invalid_argument("features 'torchscript:" + path_ +
                                  "': cannot load a TorchScript module (" + brief_error(e) + ")");
    }
    check_module_tensors(module_, path_, "features 'torchscript:" + path_ + "'");
    module_.eval();
  }
  std::string name() const override { return "torchscript:" + path_; }
  at::Tensor operator()(const at::Tensor& x) override {
    c10::InferenceMode guard;
    std::vector<at::Tensor> parts;
    for (int64_t i = 0; i < x.size(0); i += batch_) {
      const at::Tensor xb = x.narrow(0, i, std::min(batch_, x.size(0) - i)).to(at::kFloat);
      c10::IValue out;
      try {
        out = module_.forward({xb});
      } catch (const std::exception& e) {
        throw std::invalid_argument("features '" + name() + "': forward failed on input " +
                                    shape_str(xb.sizes()) + " (" + brief_error(e) + ")");
      }
      if (!out.isTensor())
        throw std::invalid_argument("features '" + name() +
                                    "': forward must return one tensor [n, d], got " +
                                    out.tagKind());
      const at::Tensor f = out.toTensor();
      if (f.dim() != 2 || f.size(0) != xb.size(0) || f.size(1) < 1)
        throw std::invalid_argument("features '" + name() + "': expected output [" +
                                    std::to_string(xb.size(0)) + ", d] for input " +
                                    shape_str(xb.sizes()) + ", got " + shape_str(f.sizes()));
      if (!at::isfinite(f).all().item<bool>())
        throw std::invalid_argument("features '" + name() + "': non-finite features for input " +
                                    shape_str(xb.sizes()));
      parts.push_back(f.to(at::kCPU, at::kDouble));
    }
    return at::cat(parts, 0);
  }

 private:
  std::string path_;
  int64_t batch_;
  torch::jit::Module module_;
};

class ClassifierSpace final : public FeatureSpace {
 public:
  ClassifierSpace() {
    path_ = (std::filesystem::path(sdekit_data_dir()) / "fmnist" / "classifier.pt").string();
    if (!std::filesystem::exists(path_))
      throw std::invalid_argument("features 'fmnist': '" + path_ +
                                  "' is missing (set SDEKIT_DATA_DIR to sdekit's data folder)");
    net_ = ImageClassifier::load(path_);
  }
  std::string name() const override { return "fmnist"; }
  at::Tensor operator()(const at::Tensor& x) override {
    if (x.dim() < 1 || x[0].numel() != 784)
      throw std::invalid_argument("features 'fmnist': expected 1x28x28 images, got " +
                                  shape_str(x.sizes()));
    return net_->features(x.reshape({x.size(0), 1, 28, 28}));
  }

 private:
  std::string path_;
  std::shared_ptr<ImageClassifier> net_;
};

}  // namespace

bool FeatureSpaceKind::matches(const std::string& spec) const {
  const auto colon = name.find(':');
  return colon == std::string::npos ? spec == name : spec.rfind(name.substr(0, colon + 1), 0) == 0;
}

const std::vector<FeatureSpaceKind>& feature_space_kinds() {
  static const std::vector<FeatureSpaceKind> kinds = {
      {"data", "the samples themselves, flattened to [n, D]",
       [](const std::string&, int64_t) -> std::unique_ptr<FeatureSpace> {
         return std::make_unique<DataSpace>();
       }},
      {"fmnist", "the committed Fashion-MNIST classifier's penultimate features (data/fmnist)",
       [](const std::string&, int64_t) -> std::unique_ptr<FeatureSpace> {
         return std::make_unique<ClassifierSpace>();
       }},
      {"torchscript:FILE.pt",
       "a TorchScript module forward(x) -> [n, d] (e.g. an exported Inception)",
       [](const std::string& spec, int64_t batch) -> std::unique_ptr<FeatureSpace> {
         return std::make_unique<TorchScriptSpace>(spec.substr(12), batch);
       }},
  };
  return kinds;
}

std::string feature_space_help() {
  std::string help;
  for (const auto& k : feature_space_kinds()) help += (help.empty() ? "" : " | ") + k.name;
  return help;
}

namespace {
const FeatureSpaceKind& feature_kind(const std::string& spec) {
  std::string valid;
  for (const auto& k : feature_space_kinds()) {
    if (k.matches(spec) && spec.size() > k.name.find(':') + 1) return k;
    valid += (valid.empty() ? "" : ", ") + k.name;
  }
  throw std::invalid_argument("unknown feature space '" + spec + "'; valid: " + valid);
}
}  // namespace

void check_feature_space(const std::string& spec) {
  const FeatureSpaceKind& k = feature_kind(spec);
  const auto colon = k.name.find(':');
  if (colon != std::string::npos && !std::filesystem::exists(spec.substr(colon + 1)))
    throw std::invalid_argument("file '" + spec.substr(colon + 1) + "' does not exist");
}

std::unique_ptr<FeatureSpace> make_feature_space(const std::string& spec, int64_t batch) {
  if (batch < 1)
    throw std::invalid_argument("feature batch must be >= 1, got " + std::to_string(batch));
  return feature_kind(spec).make(spec, batch);
}

}  // namespace sdekit
