#include "schedules/edm.hpp"

#include <cmath>

#include "schedules/validate.hpp"

namespace sdekit {

EDM::EDM(double sigma_min, double sigma_max) : smin_(sigma_min), smax_(sigma_max) {
  require_param("edm", "sigma_min", sigma_min, sigma_min > 0.0, "> 0");
  require_param("edm", "sigma_max", sigma_max, sigma_max > sigma_min, "> sigma_min");
}

double EDM::log_alpha(double t) const {
  check_t(t, "log_alpha");
  return 0.0;
}
double EDM::sigma(double t) const {
  check_t(t, "sigma");
  return t;
}
double EDM::f(double t) const {
  check_t(t, "f");
  return 0.0;
}
double EDM::g2(double t) const {
  check_t(t, "g2");
  return 2.0 * t;
}
double EDM::t_of_lambda(double lam) const {
  return std::min(std::max(std::exp(-lam), 0.0), smax_);
}

}  // namespace sdekit
