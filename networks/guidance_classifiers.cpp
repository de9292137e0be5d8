#include "networks/guidance_classifiers.hpp"

#include <torch/script.h>

#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "networks/loader.hpp"
#include "networks/module_check.hpp"
#include "networks/noisy_classifier.hpp"
#include "schedules/registry.hpp"
#include "schedules/sde.hpp"

namespace sdekit {

namespace {

class NoisyNetClassifier final : public NoiseClassifier {
 public:
  NoisyNetClassifier(std::shared_ptr<NoisyImageClassifier> net, std::string name)
      : net_(std::move(net)), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  int64_t num_classes() const override { return NoisyImageClassifier::kClasses; }
  at::Tensor logits(const at::Tensor& x, const at::Tensor& t) override {
    return net_->logits(x, t);
  }

 private:
  std::shared_ptr<NoisyImageClassifier> net_;
  std::string name_;
};

class TorchScriptClassifier final : public NoiseClassifier {
 public:
  TorchScriptClassifier(torch::jit::Module m, std::string path, at::Device dev)
      : module_(std::move(m)), path_(std::move(path)), device_(dev) {
    // The dtype of the first floating-point parameter or buffer (float32 when none), as for
    // TorchScript score models.
    dtype_ = at::kFloat;
    bool found = false;
    for (const at::Tensor& p : module_.parameters())
      if (!found && p.is_floating_point()) {
        dtype_ = p.scalar_type();
        found = true;
      }
    for (const at::Tensor& b : module_.buffers())
      if (!found && b.is_floating_point()) {
        dtype_ = b.scalar_type();
        found = true;
      }
  }
  std::string name() const override { return "torchscript:" + path_; }
  int64_t num_classes() const override { return classes_; }
  void set_classes(int64_t k) { classes_ = k; }
  at::Tensor logits(const at::Tensor& x, const at::Tensor& t) override {
    const int64_t n = x.size(0);
    std::vector<c10::IValue> in;
    in.emplace_back(x.to(device_, dtype_));
    in.emplace_back(t.to(device_, dtype_).reshape({-1}).expand({n}));
    c10::IValue out;
    try {
      out = module_.forward(std::move(in));
    } catch (const std::exception& e) {
      fail("forward failed on x " + shape(x.sizes()) + " (" + brief_error(e) + ")");
    }
    if (!out.isTensor()) fail("expected forward to return logits [n, K], got " + out.tagKind());
    const at::Tensor l = out.toTensor();
    if (l.dim() != 2 || l.size(0) != n || (classes_ > 0 && l.size(1) != classes_))
      fail("expected logits [" + std::to_string(n) + ", " +
           (classes_ > 0 ? std::to_string(classes_) : std::string("K")) + "], got " +
           shape(l.sizes()));
    return l;
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument("TorchScript classifier '" + path_ + "': " + what);
  }
  static std::string shape(at::IntArrayRef s) {
    std::ostringstream os;
    os << s;
    return os.str();
  }

 private:
  torch::jit::Module module_;
  std::string path_;
  at::Device device_;
  at::ScalarType dtype_;
  int64_t classes_ = -1;
};

std::string file_part(const std::string& spec, const std::string& prefix) {
  const std::string path = spec.substr(prefix.size());
  std::error_code ec;
  if (path.empty() || !std::filesystem::is_regular_file(path, ec))
    throw std::invalid_argument("--classifier " + spec + ": file '" + path + "' does not exist");
  return path;
}

std::shared_ptr<NoiseClassifier> load_noisy(const std::string& spec, const std::string& path,
                                            const SchedulePtr& kernel,
                                            const std::vector<int64_t>& event_shape,
                                            const std::string& device) {
  auto net = NoisyImageClassifier::load(path, device);
  const SchedulePtr own = make_sde(net->sde())->schedule();
  if (!kernel || !own || own->name() != kernel->name())
    throw std::invalid_argument(
        "--classifier " + spec + ": it was trained on noised data of --sde " + net->sde() +
        "; sample with --sde " + net->sde() + " (got " +
        (kernel ? kernel->name() : std::string("an SDE without kernel")) + ")");
  if (event_shape != std::vector<int64_t>{1, 28, 28} && event_shape != std::vector<int64_t>{784})
    throw std::invalid_argument("--classifier " + spec +
                                ": it classifies 1x28x28 images; the model's samples are not");
  return std::make_shared<NoisyNetClassifier>(std::move(net), spec);
}

std::shared_ptr<NoiseClassifier> load_ts(const std::string& spec, const SchedulePtr& kernel,
                                         const std::vector<int64_t>& event_shape,
                                         const std::string& device) {
  const std::string path = file_part(spec, "torchscript:");
  at::Device dev = at::kCPU;
  try {
    dev = at::Device(device);
  } catch (const std::exception&) {
    throw std::invalid_argument("--device " + device + ": unknown device");
  }
  torch::jit::Module m;
  try {
    m = torch::jit::load(path, dev);
  } catch (const std::exception& e) {
    throw std::invalid_argument("TorchScript classifier '" + path + "': cannot load (" +
                                brief_error(e) +
                                "; the file is truncated or corrupt, or not a TorchScript module)");
  }
  check_module_tensors(m, path, "TorchScript classifier '" + path + "'");
  m.eval();
  if (!m.find_method("forward"))
    throw std::invalid_argument("TorchScript classifier '" + path +
                                "': expected a method forward(x, t), found none");
  const auto& args = m.get_method("forward").function().getSchema().arguments();
  if (args.size() != 3)
    throw std::invalid_argument("TorchScript classifier '" + path +
                                "': expected forward(x, t) -> logits, got " +
                                std::to_string(args.size() - 1) + " arguments");
  auto c = std::make_shared<TorchScriptClassifier>(std::move(m), path, dev);
  // One probe row at the end time reads K.
  std::vector<int64_t> shape = {1};
  shape.insert(shape.end(), event_shape.begin(), event_shape.end());
  const double t = kernel ? kernel->default_t_end() : 1.0;
  const at::Tensor l = c->logits(at::zeros(shape, at::kFloat), at::full({1}, t, at::kFloat));
  if (l.size(1) < 2)
    c->fail("expected logits [n, K] with K >= 2 classes, got " +
            TorchScriptClassifier::shape(l.sizes()));
  c->set_classes(l.size(1));
  return c;
}

}  // namespace

const std::vector<ClassifierKind>& classifier_kinds() {
  static const std::vector<ClassifierKind> kinds = {
      {"exact", "the closed-form classifier of an exact mixture's components"},
      {"fmnist-noisy",
       "the committed noise-conditional Fashion-MNIST classifier (vp-linear; with --model fmnist)"},
      {"noisy:FILE.pt", "a noise-conditional classifier of `sdekit classifier --noisy`"},
      {"torchscript:FILE.pt", "a TorchScript module forward(x, t) -> logits [n, K]"},
  };
  return kinds;
}

std::string classifier_spec_help() {
  std::string help;
  for (const auto& k : classifier_kinds()) help += (help.empty() ? "" : " | ") + k.name;
  return help;
}

std::shared_ptr<NoiseClassifier> load_noise_classifier(
    const std::string& spec, const SchedulePtr& kernel, const std::vector<int64_t>& event_shape,
    const std::optional<GaussianMixture>& mixture, const std::string& device) {
  if (spec == "exact") {
    if (!mixture)
      throw std::invalid_argument(
          "--classifier exact: the exact classifier is that of an exact mixture's components; "
          "the model is no exact mixture (use fmnist-noisy, noisy:FILE.pt or torchscript:FILE.pt)");
    return std::make_shared<MixtureClassifier>(*mixture, kernel);
  }
  if (spec == "fmnist-noisy") {
    const std::string path =
        (std::filesystem::path(sdekit_data_dir()) / "fmnist" / "classifier_noisy.pt").string();
    if (!std::filesystem::exists(path))
      throw std::invalid_argument("--classifier fmnist-noisy: '" + path +
                                  "' is missing (set SDEKIT_DATA_DIR to sdekit's data folder)");
    return load_noisy(spec, path, kernel, event_shape, device);
  }
  if (spec.rfind("noisy:", 0) == 0)
    return load_noisy(spec, file_part(spec, "noisy:"), kernel, event_shape, device);
  if (spec.rfind("torchscript:", 0) == 0) return load_ts(spec, kernel, event_shape, device);
  throw std::invalid_argument("unknown --classifier '" + spec +
                              "'; valid: " + classifier_spec_help());
}

}  // namespace sdekit
