#include "networks/noisy_classifier.hpp"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "models/resources.hpp"
#include "networks/classifier.hpp"
#include "networks/module_check.hpp"
#include "schedules/registry.hpp"
#include "schedules/row_coefficients.hpp"
#include "schedules/sde.hpp"

namespace sdekit {

namespace nn = torch::nn;

namespace {
constexpr int64_t kNoisyFreqs = 16;
constexpr const char* kNoisyKind = "sdekit-noisy-image-classifier-v1";

struct NoisyNetImpl : nn::Module {
  NoisyNetImpl() {
    auto conv = [](int64_t i, int64_t o) {
      return nn::Conv2d(nn::Conv2dOptions(i, o, 3).padding(1));
    };
    c1 = register_module("c1", conv(1, 32));
    c2 = register_module("c2", conv(32, 32));
    c3 = register_module("c3", conv(32, 64));
    c4 = register_module("c4", conv(64, 64));
    fc1 = register_module("fc1", nn::Linear(64 * 7 * 7, 128));
    fc2 = register_module("fc2", nn::Linear(128, NoisyImageClassifier::kClasses));
    temb1 = register_module("temb1", nn::Linear(2 * kNoisyFreqs, 128));
    temb2 = register_module("temb2", nn::Linear(128, 32 + 32 + 64 + 64));
    torch::NoGradGuard g;
    temb2->weight.zero_();
    temb2->bias.zero_();
  }
  // Sinusoidal features of 1000 t: cos and sin of 1000 t / 10000^(i / 16), i < 16.
  static torch::Tensor time_features(const torch::Tensor& t) {
    const auto freqs = torch::exp(-std::log(10000.0) * torch::arange(kNoisyFreqs, t.options()) /
                                  double(kNoisyFreqs));
    const auto arg = (1000.0 * t).unsqueeze(1) * freqs.unsqueeze(0);
    return torch::cat({torch::cos(arg), torch::sin(arg)}, 1);
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t) {
    const auto b =
        temb2(torch::silu(temb1(time_features(t)))).split_with_sizes({32, 32, 64, 64}, 1);
    auto bias = [&](size_t i) { return b[i].unsqueeze(-1).unsqueeze(-1); };
    auto h = torch::silu(c1(x) + bias(0));
    h = torch::max_pool2d(torch::silu(c2(h) + bias(1)), 2);
    h = torch::silu(c3(h) + bias(2));
    h = torch::max_pool2d(torch::silu(c4(h) + bias(3)), 2);
    return fc2(torch::silu(fc1(h.flatten(1))));
  }
  nn::Conv2d c1{nullptr}, c2{nullptr}, c3{nullptr}, c4{nullptr};
  nn::Linear fc1{nullptr}, fc2{nullptr}, temb1{nullptr}, temb2{nullptr};
};

torch::Tensor as_noisy_images(const at::Tensor& x) {
  if (x.dim() == 2 && x.size(1) == 784) return x.reshape({x.size(0), 1, 28, 28});
  if (x.dim() == 4 && x.size(1) == 1 && x.size(2) == 28 && x.size(3) == 28) return x;
  std::ostringstream os;
  os << "noise-conditional classifier: expected images [n, 1, 28, 28] or [n, 784], got "
     << x.sizes();
  throw std::invalid_argument(os.str());
}

// x_t = alpha(t) x0 + sigma(t) eps with per-row times.
torch::Tensor noised_images(const NoiseSchedule& k, const torch::Tensor& x0, const torch::Tensor& t,
                            const torch::Tensor& eps) {
  const RowCoefficients c = row_coefficients(k, t);
  auto col = [&](const at::Tensor& v) { return v.to(x0.options()).reshape({-1, 1, 1, 1}); };
  return col(c.alpha) * x0 + col(c.sigma) * eps;
}

SchedulePtr noisy_kernel_of(const std::string& sde) {
  const SchedulePtr k = make_sde(sde)->schedule();
  if (!k)
    throw std::invalid_argument("noise-conditional classifier: SDE '" + sde +
                                "' has no Gaussian kernel to noise the data with");
  return k;
}
}  // namespace

struct NoisyImageClassifier::Impl {
  std::shared_ptr<NoisyNetImpl> net;
};

NoisyImageClassifier::NoisyImageClassifier(std::string sde, uint64_t seed)
    : sde_(std::move(sde)), impl_(std::make_unique<Impl>()) {
  torch::manual_seed(seed);
  impl_->net = std::make_shared<NoisyNetImpl>();
}
NoisyImageClassifier::~NoisyImageClassifier() = default;

at::Tensor NoisyImageClassifier::logits(const at::Tensor& x, const at::Tensor& t) {
  const auto dev = impl_->net->parameters().front().device();
  const torch::Tensor xi = as_noisy_images(x).to(dev, at::kFloat);
  torch::Tensor tt = t.reshape({-1}).to(dev, at::kFloat);
  if (tt.numel() == 1) tt = tt.expand({xi.size(0)});
  if (tt.numel() != xi.size(0)) {
    std::ostringstream os;
    os << "noise-conditional classifier: t must have 1 or " << xi.size(0) << " entries, got "
       << tt.numel();
    throw std::invalid_argument(os.str());
  }
  return impl_->net->forward(xi, tt);
}

double NoisyImageClassifier::accuracy_at(double t, const at::Tensor& images,
                                         const at::Tensor& labels, uint64_t seed) {
  const SchedulePtr k = noisy_kernel_of(sde_);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const torch::Tensor x0 = as_noisy_images(images).to(at::kFloat).cpu();
  const torch::Tensor y = labels.to(at::kLong).cpu();
  c10::InferenceMode g;
  impl_->net->eval();
  int64_t correct = 0;
  for (int64_t i = 0; i < x0.size(0); i += 500) {
    const int64_t m = std::min<int64_t>(500, x0.size(0) - i);
    const auto xb = x0.narrow(0, i, m);
    const auto tb = torch::full({m}, t, torch::kDouble);
    const auto xt = noised_images(*k, xb, tb, at::randn(xb.sizes(), gen, xb.options()));
    const auto pred = logits(xt, tb).argmax(1).cpu();
    correct += pred.eq(y.narrow(0, i, m)).sum().item<int64_t>();
  }
  return double(correct) / double(std::max<int64_t>(1, x0.size(0)));
}

void NoisyImageClassifier::init_from(const ImageClassifier& clean) {
  torch::NoGradGuard g;
  auto own = impl_->net->named_parameters();
  for (const auto& [name, value] : clean.named_parameters()) {
    if (!own.contains(name) || own[name].sizes() != value.sizes())
      throw std::invalid_argument("feature classifier: layer '" + name +
                                  "' does not match the noise-conditional classifier");
    own[name].copy_(value);
  }
}

void NoisyImageClassifier::to(const std::string& device) {
  impl_->net->to(torch::Device(device));
}

void NoisyImageClassifier::save(const std::string& path) const {
  torch::serialize::OutputArchive ar;
  ar.write("kind", torch::IValue(std::string(kNoisyKind)));
  ar.write("sde", torch::IValue(sde_));
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

std::shared_ptr<NoisyImageClassifier> NoisyImageClassifier::load(const std::string& path,
                                                                 const std::string& device) {
  check_archive_file(path, "classifier '" + path + "'");
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path);
  } catch (const c10::Error& e) {
    throw std::invalid_argument("cannot read classifier '" + path +
                                "': " + e.what_without_backtrace());
  }
  torch::IValue kind, sde;
  if (!ar.try_read("kind", kind) || !kind.isString() || kind.toStringRef() != kNoisyKind)
    throw std::invalid_argument("'" + path + "' is not an sdekit noise-conditional classifier");
  if (!ar.try_read("sde", sde) || !sde.isString())
    throw std::invalid_argument("classifier '" + path + "': no SDE recorded");
  auto c = std::make_shared<NoisyImageClassifier>(sde.toStringRef(), 0);
  torch::serialize::InputArchive w;
  if (!ar.try_read("weights", w)) throw std::invalid_argument("'" + path + "' holds no weights");
  try {
    c->impl_->net->load(w);
  } catch (const c10::Error& e) {
    throw std::invalid_argument("classifier '" + path + "': weights do not match (" +
                                e.what_without_backtrace() + ")");
  }
  c->impl_->net->eval();
  c->to(device);
  return c;
}

void NoisyClassifierTraining::validate(int64_t n) const {
  auto bad = [](const std::string& m) {
    return std::invalid_argument("noise-conditional classifier training: " + m);
  };
  if (epochs < 1) throw bad("epochs must be >= 1, got " + std::to_string(epochs));
  if (batch < 1 || batch > n)
    throw bad("batch must lie in [1, " + std::to_string(n) + "] (the training images), got " +
              std::to_string(batch));
  if (!(lr > 0) || !std::isfinite(lr)) throw bad("lr must be finite and > 0");
  noisy_kernel_of(sde);
  if (!init.empty() && !std::filesystem::exists(init))
    throw bad("--init: file '" + init + "' does not exist");
  require_memory("classifier training: batch " + std::to_string(batch),
                 double(batch) * 64.0 * 28 * 28 * 4);
}

std::shared_ptr<NoisyImageClassifier> train_noisy_classifier(
    const NoisyClassifierTraining& cfg, const at::Tensor& images, const at::Tensor& labels,
    const std::function<void(int64_t, double)>& progress) {
  cfg.validate(images.size(0));
  const SchedulePtr k = noisy_kernel_of(cfg.sde);
  auto c = std::make_shared<NoisyImageClassifier>(cfg.sde, cfg.seed);
  if (!cfg.init.empty()) c->init_from(*ImageClassifier::load(cfg.init));
  auto& net = c->impl().net;
  const torch::Tensor x = as_noisy_images(images).to(at::kFloat);
  const torch::Tensor y = labels.to(at::kLong);
  if (y.dim() != 1 || y.size(0) != x.size(0))
    throw std::invalid_argument("train_noisy_classifier: labels must be [n] for n images");
  const double lo = k->default_t_end(), hi = k->domain().hi;
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(cfg.lr));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed);
  net->train();
  for (int64_t e = 0; e < cfg.epochs; ++e) {
    const torch::Tensor perm = at::randperm(x.size(0), gen, at::kLong);
    double total = 0;
    int64_t batches = 0;
    for (int64_t i = 0; i + cfg.batch <= x.size(0); i += cfg.batch) {
      const torch::Tensor idx = perm.narrow(0, i, cfg.batch);
      const torch::Tensor u = at::rand({cfg.batch}, gen, at::kDouble);
      const torch::Tensor t = lo + (hi - lo) * u * u;
      const torch::Tensor x0 = x.index_select(0, idx);
      const torch::Tensor xt = noised_images(*k, x0, t, at::randn(x0.sizes(), gen, x0.options()));
      const torch::Tensor loss =
          torch::cross_entropy_loss(net->forward(xt, t.to(at::kFloat)), y.index_select(0, idx));
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
