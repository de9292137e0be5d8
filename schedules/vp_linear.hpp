#pragma once
#include "schedules/noise_schedule.hpp"

namespace sdekit {

/// VP SDE with linear beta(t) = b0 + t (b1 - b0) on t in [0, T] (Song et al. 2021):
/// log alpha = -t^2 (b1 - b0)/4 - t b0/2, sigma = sqrt(1 - alpha^2), f = -beta/2, g2 = beta.
/// t_of_lambda is closed form (a quadratic in t).
class VPLinear final : public NoiseSchedule {
 public:
  explicit VPLinear(double beta_min = 0.1, double beta_max = 20.0, double T = 1.0);
  std::string name() const override { return "vp-linear"; }
  Interval domain() const override { return {0.0, T_}; }
  double default_t_end() const override { return 1e-3; }
  double log_alpha(double t) const override;
  double sigma(double t) const override;
  double log_sigma(double t) const override;
  double t_of_lambda(double lam) const override;
  double f(double t) const override;
  double g2(double t) const override;
  double beta(double t) const { return b0_ + t * (b1_ - b0_); }

 private:
  double b0_, b1_, T_;
};

}  // namespace sdekit
