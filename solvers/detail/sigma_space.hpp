#pragma once
// The scaled variables of the samplers written in sigma (docs/theory.md section 4.15): for an
// affine SDE with schedule (alpha, sigma), x~ = x / alpha and sigma~ = sigma / alpha, in which the
// PF-ODE is dx~/dsigma~ = (x~ - D) / sigma~ with D the data prediction, and the reverse SDE's
// noise has variance d(sigma~^2). For VE and EDM (alpha = 1) these are x and sigma themselves.
// Half-log-SNR lambda = -log sigma~.
#include <algorithm>
#include <cmath>

#include "schedules/noise_schedule.hpp"

namespace sdekit::detail {

struct SigmaPoint {
  double t = 0, alpha = 1, sigma = 0;  // sigma: sigma~ = sigma / alpha
  static SigmaPoint at(const NoiseSchedule& k, double t) {
    SigmaPoint p;
    p.t = t;
    p.alpha = k.alpha(t);
    p.sigma = k.sigma(t) / p.alpha;
    return p;
  }
  /// The point at half-log-SNR lambda (sigma~ = e^-lambda, as the schedule gives it there).
  static SigmaPoint at_lambda(const NoiseSchedule& k, double lambda) {
    return at(k, k.t_of_lambda(lambda));
  }
  double lambda() const { return -std::log(sigma); }
};

/// The ancestral split of a step from sigma~ `from` down to `to` with noise fraction eta
/// (docs/theory.md section 4.15): up = min(to, eta sqrt(to^2 (from^2 - to^2) / from^2)),
/// down = sqrt(to^2 - up^2). eta = 0 is (to, 0); eta = 1 is DDPM's posterior noise.
struct AncestralSplit {
  double down, up;
};
inline AncestralSplit ancestral_split(double from, double to, double eta) {
  if (eta == 0.0 || to == 0.0) return {to, 0.0};
  const double up =
      std::min(to, eta * std::sqrt(to * to * (from * from - to * to) / (from * from)));
  return {std::sqrt(std::max(0.0, to * to - up * up)), up};
}

}  // namespace sdekit::detail
