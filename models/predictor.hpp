#pragma once
// A model seen through an SDE's Gaussian kernel: asks the model once and converts its output to
// whichever parameterization a sampler integrates (eps, x0, score, ...). One call of as() is
// one model call.
#include <ATen/ATen.h>

#include "models/score_model.hpp"
#include "schedules/noise_schedule.hpp"

namespace sdekit {

class Predictor {
 public:
  /// kernel may be null (an SDE without closed-form marginal): then the model must predict the
  /// score and only Param::Score can be asked for. Throws std::invalid_argument otherwise.
  Predictor(ScoreModel& model, const NoiseSchedule* kernel);
  /// The model's prediction at (x, t), converted to `to`.
  at::Tensor as(Param to, const at::Tensor& x, double t) const;
  /// One model call, no conversion: `to` = cx * x + cp * raw. Samplers fold cx and cp into
  /// their own linear combinations instead of materialising the converted tensor.
  struct Linear {
    at::Tensor raw;
    double cx = 0.0, cp = 1.0;
  };
  Linear linear(Param to, const at::Tensor& x, double t) const;
  at::Tensor eps(const at::Tensor& x, double t) const { return as(Param::Eps, x, t); }
  at::Tensor x0(const at::Tensor& x, double t) const { return as(Param::X0, x, t); }
  at::Tensor score(const at::Tensor& x, double t) const { return as(Param::Score, x, t); }
  const NoiseSchedule* kernel() const { return kernel_; }
  ScoreModel& model() const { return model_; }

 private:
  ScoreModel& model_;
  const NoiseSchedule* kernel_;
};

}  // namespace sdekit
