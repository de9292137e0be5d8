#include "schedules/callback_schedule.hpp"

#include <cmath>
#include <stdexcept>

#include "schedules/validate.hpp"

namespace sdekit {

CallbackSchedule::CallbackSchedule(Spec spec) : spec_(std::move(spec)) {
  if (!spec_.alpha || !spec_.sigma)
    throw std::invalid_argument("schedule '" + spec_.name +
                                "': both alpha and sigma callbacks are required");
  require_param(spec_.name, "domain.hi", spec_.domain.hi, spec_.domain.hi > spec_.domain.lo,
                "> domain.lo");
  require_param(spec_.name, "t_end", spec_.t_end,
                spec_.t_end > spec_.domain.lo && spec_.t_end < spec_.domain.hi,
                "inside the domain");
}

double CallbackSchedule::log_alpha(double t) const {
  check_t(t, "log_alpha");
  return std::log(spec_.alpha(t));
}
double CallbackSchedule::sigma(double t) const {
  check_t(t, "sigma");
  return spec_.sigma(t);
}

}  // namespace sdekit
