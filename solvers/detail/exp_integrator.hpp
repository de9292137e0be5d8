#pragma once
// Shared pieces of the exponential integrators in lambda (DPM-Solver, DPM-Solver++, UniPC):
// schedule scalars at a time, the first-order steps, and the guards for the ends of the
// schedule where sigma = 0 (lambda = +inf) or alpha = 0 (lambda = -inf).
#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "schedules/noise_schedule.hpp"

namespace sdekit::detail {

/// alpha, sigma and lambda at t, computed once per grid point.
struct LambdaPoint {
  double t = 0, alpha = 0, sigma = 0, lambda = 0;
  static LambdaPoint at(const NoiseSchedule& k, double t) {
    LambdaPoint p;
    p.t = t;
    p.alpha = k.alpha(t);
    p.sigma = k.sigma(t);
    p.lambda = k.lambda(t);
    return p;
  }
  /// lambda is infinite at this point: a step ending here must use the limit form.
  bool singular() const { return !std::isfinite(lambda); }
};

/// DPM-Solver-1 (eps) from s to t: x_t = (alpha_t/alpha_s) x - sigma_t expm1(h) eps,
/// h = lambda_t - lambda_s. Limits: sigma_t = 0 gives alpha_t x0, alpha_t = 0 gives sigma_t eps.
inline at::Tensor dpm1_eps(const at::Tensor& x, const at::Tensor& eps, const LambdaPoint& s,
                           const LambdaPoint& t) {
  if (t.sigma == 0.0) return at::sub(x, eps, s.sigma).mul_(t.alpha / s.alpha);
  if (t.alpha == 0.0) return eps * t.sigma;
  const double h = t.lambda - s.lambda;
  return at::mul(x, t.alpha / s.alpha).sub_(eps, t.sigma * std::expm1(h));
}

/// DPM-Solver++ 1 (x0) from s to t: x_t = (sigma_t/sigma_s) x - alpha_t expm1(-h) x0.
/// Limits: sigma_t = 0 gives alpha_t x0, alpha_t = 0 gives (sigma_t/sigma_s)(x - alpha_s x0).
inline at::Tensor dpm1_x0(const at::Tensor& x, const at::Tensor& x0, const LambdaPoint& s,
                          const LambdaPoint& t) {
  if (t.sigma == 0.0) return x0 * t.alpha;
  if (t.alpha == 0.0) return at::sub(x, x0, s.alpha).mul_(t.sigma / s.sigma);
  const double h = t.lambda - s.lambda;
  return at::mul(x, t.sigma / s.sigma).sub_(x0, t.alpha * std::expm1(-h));
}

}  // namespace sdekit::detail
