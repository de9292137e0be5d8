#pragma once
#include <string>

#include "schedules/noise_schedule.hpp"

namespace sdekit {

/// The rectified-flow (flow-matching) schedule, alpha = 1 - u, sigma = u, with the time shift of
/// SD3 and Flux, u(t) = s t / (1 + (s - 1) t) (s = 1: u = t; docs/theory.md section 2.1):
/// f = -u' / (1 - u), g2 = 2 u u' / (1 - u), u' = s / (1 + (s - 1) t)^2, and lambda =
/// log((1 - u) / u), inverted in closed form. T < 1 keeps alpha > 0 (alpha_T = 1e-3 for s = 1),
/// as vp-cosine stops short of its singularity; the prior N(0, sigma_T^2 I) then leaves out
/// alpha_T x0.
class FlowSchedule final : public NoiseSchedule {
 public:
  /// shift s > 0; throws std::invalid_argument otherwise.
  explicit FlowSchedule(double shift = 1.0, double T = 0.999);
  std::string name() const override;
  Interval domain() const override { return {0.0, T_}; }
  double default_t_end() const override { return 1e-3; }
  double log_alpha(double t) const override;
  double sigma(double t) const override;
  double log_sigma(double t) const override;
  double t_of_lambda(double lam) const override;
  double f(double t) const override;
  double g2(double t) const override;
  double shift() const { return s_; }
  /// u(t), the shifted time (= sigma).
  double shifted(double t) const { return s_ * t / (1.0 + (s_ - 1.0) * t); }

 private:
  double s_, T_;
};

/// SD3's resolution-dependent shift (Esser et al. 2024): s = sqrt(m / n) for m = H W pixels
/// against a base of n = base^2 (256^2): 1024 x 1024 gives 4.
double flow_resolution_shift(int height, int width, int base = 256);

}  // namespace sdekit
