#include "schedules/sub_vp.hpp"

#include <cmath>

#include "schedules/validate.hpp"

namespace sdekit {

SubVP::SubVP(double beta_min, double beta_max, double T) : b0_(beta_min), b1_(beta_max), T_(T) {
  require_param("sub-vp", "beta_min", beta_min, beta_min >= 0.0, ">= 0");
  require_param("sub-vp", "beta_max", beta_max, beta_max > 0.0 && beta_max >= beta_min,
                "> 0 and >= beta_min");
  require_param("sub-vp", "T", T, T > 0.0, "> 0");
}

double SubVP::log_alpha(double t) const {
  check_t(t, "log_alpha");
  return -0.5 * B(t);
}
double SubVP::sigma(double t) const {
  check_t(t, "sigma");
  return -std::expm1(-B(t));
}
double SubVP::log_sigma(double t) const {
  return std::log(sigma(t));
}
double SubVP::f(double t) const {
  check_t(t, "f");
  return -0.5 * (b0_ + t * (b1_ - b0_));
}
double SubVP::g2(double t) const {
  check_t(t, "g2");
  return (b0_ + t * (b1_ - b0_)) * -std::expm1(-2.0 * B(t));
}

double SubVP::t_of_lambda(double lam) const {
  // e^{-lambda} = sigma/alpha = e^{B/2} - e^{-B/2} = 2 sinh(B/2).
  const double Bv = (-lam > 300.0) ? -2.0 * lam : 2.0 * std::asinh(0.5 * std::exp(-lam));
  const double c = 0.5 * Bv;     // a t^2 + b t = c
  if (std::isinf(c)) return T_;  // lam = -inf: t = inf/inf would be NaN
  const double a = 0.25 * (b1_ - b0_), b = 0.5 * b0_;
  const double t = 2.0 * c / (b + std::sqrt(b * b + 4.0 * a * c));
  return std::min(std::max(t, 0.0), T_);
}

}  // namespace sdekit
