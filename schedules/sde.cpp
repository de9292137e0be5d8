#include "schedules/sde.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "schedules/callback_schedule.hpp"

namespace sdekit {

double SDE::diffusion(double t) const {
  return std::sqrt(g2(t));
}

at::Tensor SDE::reverse_drift(const at::Tensor& x, double t, const at::Tensor& score) const {
  return drift(x, t) - g2(t) * score;
}

at::Tensor SDE::pf_drift(const at::Tensor& x, double t, const at::Tensor& score) const {
  return drift(x, t) - 0.5 * g2(t) * score;
}

AffineSDE::AffineSDE(SchedulePtr schedule) : schedule_(std::move(schedule)) {
  if (!schedule_) throw std::invalid_argument("AffineSDE: schedule is null");
}

at::Tensor AffineSDE::drift(const at::Tensor& x, double t) const {
  return schedule_->f(t) * x;
}

double AffineSDE::prior_std() const {
  const double T = schedule_->domain().hi;
  const double a = schedule_->alpha(T), s = schedule_->sigma(T);
  return std::sqrt(a * a + s * s);
}

CallbackSDE::CallbackSDE(Spec spec) : spec_(std::move(spec)) {
  const std::string who = "sde '" + spec_.name + "'";
  if (!spec_.drift) throw std::invalid_argument(who + ": the drift callback f(x, t) is required");
  if (!spec_.diffusion)
    throw std::invalid_argument(who + ": the diffusion callback g(t) is required");
  if (static_cast<bool>(spec_.alpha) != static_cast<bool>(spec_.sigma))
    throw std::invalid_argument(who + ": give both alpha and sigma callbacks, or neither");
  if (!(spec_.domain.hi > spec_.domain.lo))
    throw std::invalid_argument(who + ": domain.hi must exceed domain.lo");
  if (!(spec_.t_end > spec_.domain.lo && spec_.t_end < spec_.domain.hi))
    throw std::invalid_argument(who + ": t_end must lie inside the domain");
  if (spec_.alpha) {
    CallbackSchedule::Spec k;
    k.name = spec_.name;
    k.domain = spec_.domain;
    k.t_end = spec_.t_end;
    k.alpha = spec_.alpha;
    k.sigma = spec_.sigma;
    kernel_ = std::make_shared<CallbackSchedule>(std::move(k));
  }
  if (spec_.prior_std > 0.0) {
    prior_std_ = spec_.prior_std;
  } else if (kernel_) {
    const double T = spec_.domain.hi;
    const double a = kernel_->alpha(T), s = kernel_->sigma(T);
    prior_std_ = std::sqrt(a * a + s * s);
  } else {
    throw std::invalid_argument(who +
                                ": prior_std is required when no alpha/sigma kernel is given");
  }
}

void CallbackSDE::check_t(double t) const {
  if (!(t >= spec_.domain.lo && t <= spec_.domain.hi)) {
    std::ostringstream os;
    os << "sde '" << spec_.name << "': t = " << t << " is outside the domain [" << spec_.domain.lo
       << ", " << spec_.domain.hi << "]";
    throw std::invalid_argument(os.str());
  }
}

at::Tensor CallbackSDE::drift(const at::Tensor& x, double t) const {
  check_t(t);
  return spec_.drift(x, t);
}

double CallbackSDE::g2(double t) const {
  check_t(t);
  const double g = spec_.diffusion(t);
  return g * g;
}

}  // namespace sdekit
