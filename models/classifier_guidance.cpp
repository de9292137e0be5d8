#include "models/classifier_guidance.hpp"

#include <chrono>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "models/param.hpp"
#include "schedules/row_coefficients.hpp"

#include <ATen/core/grad_mode.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/autograd.h>

namespace sdekit {

at::Tensor NoiseClassifier::log_prob_grad(const at::Tensor& x, const at::Tensor& t,
                                          const at::Tensor& y) {
  // Gradients are needed even where the caller runs under inference mode or no_grad; a clone
  // made here is an ordinary tensor that autograd may record.
  c10::InferenceMode no_inference(false);
  at::AutoGradMode grad_on(true);
  const at::Tensor xg = x.detach().clone().requires_grad_(true);
  const at::Tensor logits_ = logits(xg, t);
  const int64_t n = x.size(0);
  if (logits_.dim() != 2 || logits_.size(0) != n || logits_.size(1) != num_classes()) {
    std::ostringstream os;
    os << "classifier '" << name() << "': logits must have shape [" << n << ", " << num_classes()
       << "], got " << logits_.sizes();
    throw std::invalid_argument(os.str());
  }
  const at::Tensor chosen =
      at::log_softmax(logits_, 1).gather(1, y.to(logits_.device(), at::kLong).view({n, 1}));
  // Rows are independent, so the gradient of the sum is each row's own gradient.
  const auto g = torch::autograd::grad({chosen.sum()}, {xg});
  if (!g[0].defined())
    throw std::invalid_argument("classifier '" + name() + "': its logits do not depend on x");
  return g[0].detach().to(x.device(), x.scalar_type());
}

MixtureClassifier::MixtureClassifier(GaussianMixture mixture, SchedulePtr kernel)
    : mixture_(std::move(mixture)), kernel_(std::move(kernel)) {
  if (!kernel_)
    throw std::invalid_argument(
        "exact mixture classifier: the SDE has no Gaussian kernel (alpha, sigma)");
}

void MixtureClassifier::coefficients(const at::Tensor& x, const at::Tensor& t, at::Tensor& a,
                                     at::Tensor& s) const {
  const int64_t n = x.size(0);
  if (t.numel() != 1 && t.numel() != n)
    throw std::invalid_argument("exact mixture classifier: t must have 1 or " + std::to_string(n) +
                                " entries, got " + std::to_string(t.numel()));
  const RowCoefficients c = row_coefficients(*kernel_, t.reshape({-1}).expand({n}));
  a = c.alpha;
  s = c.sigma;
}

at::Tensor MixtureClassifier::logits(const at::Tensor& x, const at::Tensor& t) {
  at::Tensor a, s;
  coefficients(x, t, a, s);
  return mixture_.log_joint(x, a, s);
}

at::Tensor MixtureClassifier::log_prob_grad(const at::Tensor& x, const at::Tensor& t,
                                            const at::Tensor& y) {
  at::Tensor a, s;
  coefficients(x, t, a, s);
  return mixture_.responsibility_grad(x, a, s, y);
}

ClassifierGuidedModel::ClassifierGuidedModel(std::shared_ptr<ScoreModel> model,
                                             std::shared_ptr<NoiseClassifier> classifier,
                                             SchedulePtr kernel, at::Tensor labels, double scale)
    : model_(std::move(model)),
      classifier_(std::move(classifier)),
      kernel_(std::move(kernel)),
      labels_(std::move(labels)),
      scale_(scale) {
  if (!model_) throw std::invalid_argument("classifier guidance: no model");
  if (!classifier_) throw std::invalid_argument("classifier guidance: no classifier");
  if (!kernel_)
    throw std::invalid_argument(
        "classifier guidance needs an SDE with a Gaussian kernel (alpha, sigma) to convert the "
        "model's prediction to a score");
  if (!std::isfinite(scale_))
    throw std::invalid_argument("--classifier-scale must be finite, got " + std::to_string(scale_));
  if (!labels_.defined() || labels_.dim() != 1 || labels_.size(0) < 1)
    throw std::invalid_argument("classifier guidance: labels must be a non-empty 1-D tensor");
  labels_ = labels_.to(at::kLong);
  const int64_t K = classifier_->num_classes();
  const int64_t lo = labels_.min().item<int64_t>(), hi = labels_.max().item<int64_t>();
  if (lo < 0 || hi >= K)
    throw std::invalid_argument("--class must lie in [0, " + std::to_string(K - 1) +
                                "], the classes of classifier '" + classifier_->name() + "', got " +
                                std::to_string(lo < 0 ? lo : hi));
}

std::string ClassifierGuidedModel::name() const {
  std::ostringstream os;
  os << model_->name() << " (classifier " << classifier_->name() << ", scale " << scale_ << ")";
  return os.str();
}

at::Tensor ClassifierGuidedModel::guided(at::Tensor pred, const at::Tensor& x, const at::Tensor& t,
                                         const at::Tensor& cp) {
  const auto t0 = std::chrono::steady_clock::now();
  const at::Tensor y = labels_for_rows(labels_, x.size(0), x.device());
  const at::Tensor g = classifier_->log_prob_grad(x, t, y);
  ++calls_;
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (g.sizes() != x.sizes()) {
    std::ostringstream os;
    os << "classifier '" << classifier_->name() << "': gradient shape " << g.sizes()
       << " differs from x's " << x.sizes();
    throw std::invalid_argument(os.str());
  }
  // pred is affine in the score with coefficient cp (per row or scalar): pred + cp s grad.
  return pred.add(g.mul(cp.mul(scale_)));
}

at::Tensor ClassifierGuidedModel::predict_at(const at::Tensor& x, double t) {
  at::Tensor pred = model_->predict_at(x, t);
  if (scale_ == 0.0) return pred;
  const LinearCoeffs c =
      conversion_coefficients(Param::Score, model_->param(), kernel_->alpha(t), kernel_->sigma(t));
  return guided(std::move(pred), x, at::full({x.size(0)}, t, x.options()),
                at::scalar_tensor(c.cp, x.options()));
}

at::Tensor ClassifierGuidedModel::predict(const at::Tensor& x, const at::Tensor& t) {
  at::Tensor pred = model_->predict(x, t);
  if (scale_ == 0.0) return pred;
  const at::Tensor th = t.detach().reshape({-1}).to(at::kCPU, at::kDouble).contiguous();
  const int64_t n = x.size(0);
  if (th.numel() != n)
    throw std::invalid_argument("classifier guidance: t must have " + std::to_string(n) +
                                " entries, got " + std::to_string(th.numel()));
  at::Tensor cp = at::empty({n}, at::kDouble);
  for (int64_t i = 0; i < n; ++i) {
    const double ti = th.data_ptr<double>()[i];
    cp.data_ptr<double>()[i] = conversion_coefficients(Param::Score, model_->param(),
                                                       kernel_->alpha(ti), kernel_->sigma(ti))
                                   .cp;
  }
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = n;
  return guided(std::move(pred), x, t, cp.to(x.options()).view(shape));
}

}  // namespace sdekit
