#include "schedules/vp_cosine.hpp"

#include <cmath>

#include "schedules/validate.hpp"

namespace sdekit {

namespace {
constexpr double kPi = 3.14159265358979323846;
}

VPCosine::VPCosine(double s, double T) : s_(s), T_(T) {
  require_param("vp-cosine", "s", s, s > 0.0 && s < 1.0, "in (0, 1)");
  require_param("vp-cosine", "T", T, T > 0.0 && T < 1.0, "in (0, 1) (alpha vanishes at t = 1)");
  log_cos0_ = std::log(std::cos(theta(0.0)));
}

double VPCosine::theta(double t) const {
  return 0.5 * kPi * (t + s_) / (1.0 + s_);
}

double VPCosine::log_alpha(double t) const {
  check_t(t, "log_alpha");
  // log(cos th / cos th0) = log1p(-x), x = (cos th0 - cos th) / cos th0
  //   = 2 sin((th + th0)/2) sin((th - th0)/2) / cos th0, th - th0 = (pi/2) t/(1+s): full relative
  // precision near t = 0, where log(cos th) - log(cos th0) cancels (error ~1e-16 absolute).
  const double th = theta(t), th0 = theta(0.0), dth = 0.5 * kPi * t / (1.0 + s_);
  const double x = 2.0 * std::sin(0.5 * (th + th0)) * std::sin(0.5 * dth) / std::cos(th0);
  return x < 0.5 ? std::log1p(-x) : std::log(std::cos(th)) - log_cos0_;
}
double VPCosine::sigma(double t) const {
  return std::sqrt(-std::expm1(2.0 * log_alpha(t)));
}
double VPCosine::log_sigma(double t) const {
  return 0.5 * std::log(-std::expm1(2.0 * log_alpha(t)));
}
double VPCosine::f(double t) const {
  check_t(t, "f");
  return -0.5 * kPi / (1.0 + s_) * std::tan(theta(t));
}
double VPCosine::g2(double t) const {
  return -2.0 * f(t);
}

double VPCosine::t_of_lambda(double lam) const {
  // alpha^2 = sigmoid(2 lam), sigma^2 = sigmoid(-2 lam); cos theta = alpha cos theta0 and
  // sin theta = sqrt(sigma^2 + alpha^2 sin^2 theta0): atan2 keeps full precision near t = 0.
  const double a2 = std::exp(-softplus(-2.0 * lam));
  const double s2 = std::exp(-softplus(2.0 * lam));
  const double c0 = std::exp(log_cos0_);
  const double sin0 = std::sin(theta(0.0));
  const double th = std::atan2(std::sqrt(s2 + a2 * sin0 * sin0), std::sqrt(a2) * c0);
  const double t = th * 2.0 * (1.0 + s_) / kPi - s_;
  return std::min(std::max(t, 0.0), T_);
}

}  // namespace sdekit
