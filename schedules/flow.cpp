#include "schedules/flow.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "schedules/validate.hpp"

namespace sdekit {

FlowSchedule::FlowSchedule(double shift, double T) : s_(shift), T_(T) {
  require_param("flow", "shift", shift, shift > 0.0 && std::isfinite(shift), "> 0");
  require_param("flow", "T", T, T > 0.0 && T < 1.0, "in (0, 1)");
}

std::string FlowSchedule::name() const {
  if (s_ == 1.0) return "flow";
  std::ostringstream os;
  os << "flow:shift=" << s_;
  return os.str();
}

double FlowSchedule::log_alpha(double t) const {
  check_t(t, "log_alpha");
  return std::log1p(-shifted(t));
}
double FlowSchedule::sigma(double t) const {
  check_t(t, "sigma");
  return shifted(t);
}
double FlowSchedule::log_sigma(double t) const {
  check_t(t, "log_sigma");
  return std::log(s_ * t) - std::log1p((s_ - 1.0) * t);
}
double FlowSchedule::t_of_lambda(double lam) const {
  // u = 1 / (1 + e^lambda), t = u / (s - (s - 1) u); clamped to the domain.
  const double u = lam > 0 ? std::exp(-lam) / (1.0 + std::exp(-lam)) : 1.0 / (1.0 + std::exp(lam));
  const double t = u / (s_ - (s_ - 1.0) * u);
  return std::min(T_, std::max(0.0, t));
}
double FlowSchedule::f(double t) const {
  check_t(t, "f");
  const double d = 1.0 + (s_ - 1.0) * t;
  return -(s_ / (d * d)) / (1.0 - shifted(t));
}
double FlowSchedule::g2(double t) const {
  check_t(t, "g2");
  const double d = 1.0 + (s_ - 1.0) * t, u = shifted(t);
  return 2.0 * u * (s_ / (d * d)) / (1.0 - u);
}

double flow_resolution_shift(int height, int width, int base) {
  if (height < 1 || width < 1 || base < 1)
    throw std::invalid_argument("flow: the resolution's height, width and base must be >= 1");
  return std::sqrt(double(height) * double(width)) / double(base);
}

}  // namespace sdekit
