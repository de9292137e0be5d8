#pragma once
// Shared pieces of the exponential integrators in lambda (DPM-Solver, DPM-Solver++, UniPC):
// schedule scalars at a time, the first-order steps, and the guards for the ends of the
// schedule where sigma = 0 (lambda = +inf) or alpha = 0 (lambda = -inf).
#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "schedules/noise_schedule.hpp"
#include "solvers/detail/inplace.hpp"

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
inline void dpm1_eps(const at::Tensor& x, const at::Tensor& eps, const LambdaPoint& s,
                     const LambdaPoint& t, at::Tensor& out) {
  const double r = t.alpha / s.alpha;
  if (t.sigma == 0.0) return lincomb(out, {{r, x}, {-r * s.sigma, eps}});
  if (t.alpha == 0.0) return lincomb(out, {{t.sigma, eps}});
  lincomb(out, {{r, x}, {-t.sigma * std::expm1(t.lambda - s.lambda), eps}});
}

/// DPM-Solver++ 1 (x0) from s to t: x_t = (sigma_t/sigma_s) x - alpha_t expm1(-h) x0.
/// Limits: sigma_t = 0 gives alpha_t x0, alpha_t = 0 gives (sigma_t/sigma_s)(x - alpha_s x0).
inline void dpm1_x0(const at::Tensor& x, const at::Tensor& x0, const LambdaPoint& s,
                    const LambdaPoint& t, at::Tensor& out) {
  const double r = t.sigma / s.sigma;
  if (t.sigma == 0.0) return lincomb(out, {{t.alpha, x0}});
  if (t.alpha == 0.0) return lincomb(out, {{r, x}, {-r * s.alpha, x0}});
  lincomb(out, {{r, x}, {-t.alpha * std::expm1(-(t.lambda - s.lambda)), x0}});
}

}  // namespace sdekit::detail
