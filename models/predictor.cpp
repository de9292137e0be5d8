#include "models/predictor.hpp"

#include <stdexcept>

namespace sdekit {

Predictor::Predictor(ScoreModel& model, const NoiseSchedule* kernel)
    : model_(model), kernel_(kernel) {
  if (!kernel_ && model_.param() != Param::Score)
    throw std::invalid_argument(
        "model '" + model_.name() + "' predicts " + param_name(model_.param()) +
        ", but the SDE has no closed-form alpha/sigma to convert it; give the "
        "SDE alpha and sigma callbacks or use a score model");
}

at::Tensor Predictor::as(Param to, const at::Tensor& x, double t) const {
  at::Tensor pred = model_.predict_at(x, t);
  const Param from = model_.param();
  if (from == to) return pred;
  if (!kernel_)
    throw std::invalid_argument("cannot convert a score prediction to " + param_name(to) +
                                " without the SDE's alpha/sigma");
  return convert(pred, from, to, x, kernel_->alpha(t), kernel_->sigma(t));
}

Predictor::Linear Predictor::linear(Param to, const at::Tensor& x, double t) const {
  Linear out;
  out.raw = model_.predict_at(x, t);
  const Param from = model_.param();
  if (from == to) return out;
  if (!kernel_)
    throw std::invalid_argument("cannot convert a score prediction to " + param_name(to) +
                                " without the SDE's alpha/sigma");
  const LinearCoeffs c = conversion_coefficients(from, to, kernel_->alpha(t), kernel_->sigma(t));
  out.cx = c.cx;
  out.cp = c.cp;
  return out;
}

}  // namespace sdekit
