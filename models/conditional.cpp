#include "models/conditional.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace sdekit {

GuidedModel::GuidedModel(std::shared_ptr<ConditionalModel> model, at::Tensor labels,
                         double guidance)
    : model_(std::move(model)), labels_(std::move(labels)), guidance_(guidance) {
  if (!model_) throw std::invalid_argument("GuidedModel: no model");
  if (!std::isfinite(guidance_))
    throw std::invalid_argument("guidance weight must be finite, got " + std::to_string(guidance_));
  if (labels_.dim() != 1 || labels_.size(0) < 1)
    throw std::invalid_argument("labels must be a non-empty 1-D tensor");
  labels_ = labels_.to(at::kLong);
  const int64_t lo = labels_.min().item<int64_t>(), hi = labels_.max().item<int64_t>();
  if (lo < 0 || hi > model_->num_classes())
    throw std::invalid_argument("class labels must lie in [0, " +
                                std::to_string(model_->num_classes() - 1) + "] (or " +
                                std::to_string(model_->num_classes()) +
                                " for unconditional), got " + std::to_string(lo < 0 ? lo : hi));
}

std::string GuidedModel::name() const {
  std::ostringstream os;
  os << model_->name() << " (guidance " << guidance_ << ")";
  return os.str();
}

at::Tensor labels_for_rows(const at::Tensor& labels, int64_t n, at::Device device) {
  const at::Tensor y = labels.to(device);
  if (y.size(0) == 1) return y.expand({n});
  if (y.size(0) == n) return y;
  return y.index_select(0, at::arange(n, y.options()).remainder(y.size(0)));
}

at::Tensor GuidedModel::labels_for(const at::Tensor& x) const {
  return labels_for_rows(labels_, x.size(0), x.device());
}

at::Tensor ConditionalModel::predict_grad(const at::Tensor&, const at::Tensor&, const at::Tensor&) {
  throw std::invalid_argument("model '" + name() +
                              "' cannot give gradients (its predictions are not recorded by "
                              "autograd); the likelihood's divergence needs them");
}

at::Tensor GuidedModel::predict_grad(const at::Tensor& x, const at::Tensor& t) {
  const at::Tensor y = labels_for(x);
  const at::Tensor cond = model_->predict_grad(x, t, y);
  if (guidance_ == 0.0) return cond;
  const at::Tensor uncond = model_->predict_grad(x, t, at::full_like(y, model_->null_class()));
  return cond * (1.0 + guidance_) - uncond * guidance_;
}

at::Tensor GuidedModel::predict(const at::Tensor& x, const at::Tensor& t) {
  const at::Tensor y = labels_for(x);
  const at::Tensor cond = model_->predict(x, t, y);
  if (guidance_ == 0.0) return cond;
  const at::Tensor null = at::full_like(y, model_->null_class());
  const at::Tensor uncond = model_->predict(x, t, null);
  return cond.mul(1.0 + guidance_).sub_(uncond.mul(guidance_));
}

}  // namespace sdekit
