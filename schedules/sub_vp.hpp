#pragma once
#include "schedules/noise_schedule.hpp"

namespace sdekit {

/// sub-VP SDE (Song et al. 2021) with linear beta on t in [0, T]: B(t) = int_0^t beta,
/// alpha = exp(-B/2), sigma = 1 - exp(-B) (not VP: alpha^2 + sigma^2 != 1),
/// f = -beta/2, g2 = beta (1 - exp(-2B)). t_of_lambda is closed form: B = 2 asinh(e^-lambda / 2).
class SubVP final : public NoiseSchedule {
 public:
  explicit SubVP(double beta_min = 0.1, double beta_max = 20.0, double T = 1.0);
  std::string name() const override { return "sub-vp"; }
  Interval domain() const override { return {0.0, T_}; }
  double default_t_end() const override { return 1e-3; }
  double log_alpha(double t) const override;
  double sigma(double t) const override;
  double log_sigma(double t) const override;
  double t_of_lambda(double lam) const override;
  double f(double t) const override;
  double g2(double t) const override;

 private:
  double B(double t) const { return 0.5 * t * t * (b1_ - b0_) + t * b0_; }
  double b0_, b1_, T_;
};

}  // namespace sdekit
