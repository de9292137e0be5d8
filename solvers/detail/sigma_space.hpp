#pragma once
// The scaled variables of the samplers written in sigma (docs/theory.md section 4.15): for an
// affine SDE with schedule (alpha, sigma), x~ = x / alpha and sigma~ = sigma / alpha, in which the
// PF-ODE is dx~/dsigma~ = (x~ - D) / sigma~ with D the data prediction, and the reverse SDE's
// noise has variance d(sigma~^2). For VE and EDM (alpha = 1) these are x and sigma themselves.
// Half-log-SNR lambda = -log sigma~.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "schedules/noise_schedule.hpp"
#include "solvers/detail/inplace.hpp"
#include "solvers/sampler.hpp"

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

/// What every step in sigma starts with: both ends as SigmaPoints and D = x0(x, s) in the run
/// buffer "x0".
struct SigmaStep {
  SigmaPoint s, t;
  at::Tensor& D;
};
inline SigmaStep sigma_step(const RunContext& run, const at::Tensor& x, double s_t, double t_t) {
  const NoiseSchedule& k = *run.kernel;
  at::Tensor& D = run.buffer("x0", x);
  predict_into(run.predictor, Param::X0, x, s_t, D);
  return {SigmaPoint::at(k, s_t), SigmaPoint::at(k, t_t), D};
}

/// The noise options of the ancestral and SDE samplers: eta >= 0 and s_noise >= 0, else
/// std::invalid_argument naming the sampler.
inline void check_noise_options(const std::string& sampler, double eta, double s_noise) {
  if (!(eta >= 0.0))
    throw std::invalid_argument(sampler + ": eta must be >= 0, got " + std::to_string(eta));
  if (!(s_noise >= 0.0))
    throw std::invalid_argument(sampler + ": s_noise must be >= 0, got " + std::to_string(s_noise));
}

}  // namespace sdekit::detail
