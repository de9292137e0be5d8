#include "schedules/vp_linear.hpp"

#include <cmath>

#include "schedules/validate.hpp"

namespace sdekit {

VPLinear::VPLinear(double beta_min, double beta_max, double T)
    : b0_(beta_min), b1_(beta_max), T_(T) {
  require_param("vp-linear", "beta_min", beta_min, beta_min >= 0.0, ">= 0");
  require_param("vp-linear", "beta_max", beta_max, beta_max > 0.0 && beta_max >= beta_min,
                "> 0 and >= beta_min");
  require_param("vp-linear", "T", T, T > 0.0, "> 0");
}

double VPLinear::log_alpha(double t) const {
  check_t(t, "log_alpha");
  return -0.25 * t * t * (b1_ - b0_) - 0.5 * t * b0_;
}
double VPLinear::sigma(double t) const {
  return std::sqrt(-std::expm1(2.0 * log_alpha(t)));
}
double VPLinear::log_sigma(double t) const {
  return 0.5 * std::log(-std::expm1(2.0 * log_alpha(t)));
}
double VPLinear::f(double t) const {
  check_t(t, "f");
  return -0.5 * beta(t);
}
double VPLinear::g2(double t) const {
  check_t(t, "g2");
  return beta(t);
}

double VPLinear::t_of_lambda(double lam) const {
  // -log alpha = softplus(-2 lambda)/2 =: c, and a t^2 + b t = c with a = (b1-b0)/4, b = b0/2.
  const double c = 0.5 * softplus(-2.0 * lam);
  if (std::isinf(c)) return T_;  // lam = -inf: t = inf/inf would be NaN
  const double a = 0.25 * (b1_ - b0_), b = 0.5 * b0_;
  const double t = 2.0 * c / (b + std::sqrt(b * b + 4.0 * a * c));
  return std::min(std::max(t, 0.0), T_);
}

}  // namespace sdekit
