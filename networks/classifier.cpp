#include "networks/classifier.hpp"

#include "models/resources.hpp"
#include "networks/module_check.hpp"

#include <torch/torch.h>

#include <stdexcept>

namespace sdekit {

namespace nn = torch::nn;

namespace {
struct NetImpl : nn::Module {
  NetImpl() {
    auto conv = [](int64_t i, int64_t o) {
      return nn::Conv2d(nn::Conv2dOptions(i, o, 3).padding(1));
    };
    c1 = register_module("c1", conv(1, 32));
    c2 = register_module("c2", conv(32, 32));
    c3 = register_module("c3", conv(32, 64));
    c4 = register_module("c4", conv(64, 64));
    fc1 = register_module("fc1", nn::Linear(64 * 7 * 7, ImageClassifier::kFeatureDim));
    fc2 = register_module("fc2", nn::Linear(ImageClassifier::kFeatureDim, 10));
  }
  torch::Tensor features(const torch::Tensor& x) {
    auto h = torch::max_pool2d(torch::silu(c2(torch::silu(c1(x)))), 2);
    h = torch::max_pool2d(torch::silu(c4(torch::silu(c3(h)))), 2);
    return torch::silu(fc1(h.flatten(1)));
  }
  torch::Tensor forward(const torch::Tensor& x) { return fc2(features(x)); }
  nn::Conv2d c1{nullptr}, c2{nullptr}, c3{nullptr}, c4{nullptr};
  nn::Linear fc1{nullptr}, fc2{nullptr};
};

torch::Tensor as_images(const at::Tensor& x) {
  if (x.dim() == 2 && x.size(1) == 784) return x.reshape({x.size(0), 1, 28, 28}).to(at::kFloat);
  if (x.dim() == 4 && x.size(1) == 1 && x.size(2) == 28 && x.size(3) == 28) return x.to(at::kFloat);
  std::ostringstream os;
  os << "image classifier: expected images [n, 1, 28, 28] or [n, 784], got " << x.sizes();
  throw std::invalid_argument(os.str());
}
}  // namespace

struct ImageClassifier::Impl {
  std::shared_ptr<NetImpl> net;
};

ImageClassifier::ImageClassifier(uint64_t seed) : impl_(std::make_unique<Impl>()) {
  torch::manual_seed(seed);
  impl_->net = std::make_shared<NetImpl>();
}
ImageClassifier::~ImageClassifier() = default;

at::Tensor ImageClassifier::features(const at::Tensor& images) {
  const torch::Tensor x = as_images(images).cpu();
  c10::InferenceMode g;
  impl_->net->eval();
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < x.size(0); i += 500)
    out.push_back(impl_->net->features(x.narrow(0, i, std::min<int64_t>(500, x.size(0) - i))));
  return torch::cat(out).to(at::kDouble);
}

at::Tensor ImageClassifier::logits(const at::Tensor& images) {
  const torch::Tensor x = as_images(images).cpu();
  c10::InferenceMode g;
  impl_->net->eval();
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < x.size(0); i += 500)
    out.push_back(impl_->net->forward(x.narrow(0, i, std::min<int64_t>(500, x.size(0) - i))));
  return torch::cat(out);
}

double ImageClassifier::accuracy(const at::Tensor& images, const at::Tensor& labels) {
  const at::Tensor pred = logits(images).argmax(1);
  return pred.eq(labels.to(at::kLong).cpu()).to(at::kDouble).mean().item<double>();
}

std::vector<std::pair<std::string, at::Tensor>> ImageClassifier::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& kv : impl_->net->named_parameters()) out.emplace_back(kv.key(), kv.value());
  return out;
}

void ImageClassifier::save(const std::string& path) const {
  torch::serialize::OutputArchive ar;
  ar.write("kind", torch::IValue(std::string("sdekit-image-classifier-v1")));
  torch::serialize::OutputArchive w;
  impl_->net->save(w);
  ar.write("weights", w);
  try {
    ar.save_to(path);
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot write classifier '" + path +
                             "': " + e.what_without_backtrace());
  }
}

std::shared_ptr<ImageClassifier> ImageClassifier::load(const std::string& path) {
  check_archive_file(path, "classifier '" + path + "'");
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path);
  } catch (const c10::Error& e) {
    throw std::invalid_argument("cannot read classifier '" + path +
                                "': " + e.what_without_backtrace());
  }
  torch::IValue kind;
  if (!ar.try_read("kind", kind) || !kind.isString() ||
      kind.toStringRef() != "sdekit-image-classifier-v1")
    throw std::invalid_argument("'" + path + "' is not an sdekit image classifier");
  auto c = std::make_shared<ImageClassifier>(0);
  torch::serialize::InputArchive w;
  ar.read("weights", w);
  c->impl_->net->load(w);
  c->impl_->net->eval();
  return c;
}

void ClassifierTraining::validate(int64_t n) const {
  auto bad = [](const std::string& m) {
    return std::invalid_argument("classifier training: " + m);
  };
  if (epochs < 1) throw bad("epochs must be >= 1, got " + std::to_string(epochs));
  if (batch < 1 || batch > n)
    throw bad("batch must lie in [1, " + std::to_string(n) + "] (the training images), got " +
              std::to_string(batch));
  if (!(lr > 0) || !std::isfinite(lr)) throw bad("lr must be finite and > 0");
  // Activations of the small CNN: about 32 float32 feature maps of 28 x 28 per image, kept for
  // the backward pass.
  require_memory("classifier training: batch " + std::to_string(batch),
                 double(batch) * 64.0 * 28 * 28 * 4);
}

std::shared_ptr<ImageClassifier> train_classifier(
    const ClassifierTraining& cfg, const at::Tensor& images, const at::Tensor& labels,
    const std::function<void(int64_t, double)>& progress) {
  cfg.validate(images.size(0));
  auto c = std::make_shared<ImageClassifier>(cfg.seed);
  auto& net = c->impl().net;
  const torch::Tensor x = as_images(images);
  const torch::Tensor y = labels.to(at::kLong);
  if (y.dim() != 1 || y.size(0) != x.size(0))
    throw std::invalid_argument("train_classifier: labels must be [n] for n images");
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(cfg.lr));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed);
  net->train();
  for (int64_t e = 0; e < cfg.epochs; ++e) {
    const torch::Tensor perm = at::randperm(x.size(0), gen, at::kLong);
    double total = 0;
    int64_t batches = 0;
    for (int64_t i = 0; i + cfg.batch <= x.size(0); i += cfg.batch) {
      const torch::Tensor idx = perm.narrow(0, i, cfg.batch);
      const torch::Tensor loss =
          torch::cross_entropy_loss(net->forward(x.index_select(0, idx)), y.index_select(0, idx));
      opt.zero_grad();
      loss.backward();
      opt.step();
      total += loss.item<double>();
      ++batches;
    }
    if (progress) progress(e + 1, total / std::max<int64_t>(1, batches));
  }
  net->eval();
  return c;
}

}  // namespace sdekit
