#include "schedules/ve.hpp"

#include <cmath>

#include "schedules/validate.hpp"

namespace sdekit {

VE::VE(double sigma_min, double sigma_max) : smin_(sigma_min), smax_(sigma_max) {
  require_param("ve", "sigma_min", sigma_min, sigma_min > 0.0, "> 0");
  require_param("ve", "sigma_max", sigma_max, sigma_max > sigma_min, "> sigma_min");
  log_ratio_ = std::log(smax_ / smin_);
}

double VE::log_alpha(double t) const {
  check_t(t, "log_alpha");
  return 0.0;
}
double VE::log_sigma(double t) const {
  check_t(t, "sigma");
  return std::log(smin_) + t * log_ratio_;
}
double VE::f(double t) const {
  check_t(t, "f");
  return 0.0;
}
double VE::g2(double t) const {
  const double s = sigma(t);
  return 2.0 * s * s * log_ratio_;
}
double VE::t_of_lambda(double lam) const {
  const double t = (-lam - std::log(smin_)) / log_ratio_;
  return std::min(std::max(t, 0.0), 1.0);
}

}  // namespace sdekit
