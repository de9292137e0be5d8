#include "solvers/sampler.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace sdekit {

void validate_request(const Sampler& sampler, const SampleRequest& r) {
  const std::string who = "sampler " + std::string(sampler.name());
  if (!r.model) throw std::invalid_argument(who + ": request.model is null");
  if (!r.sde) throw std::invalid_argument(who + ": request.sde is null");
  if (r.times.size() < 2)
    throw std::invalid_argument(who + ": request.times needs at least 2 entries, got " +
                                std::to_string(r.times.size()));
  const Interval d = r.sde->domain();
  for (size_t i = 0; i < r.times.size(); ++i) {
    const double t = r.times[i];
    if (!(t > d.lo && t <= d.hi)) {
      std::ostringstream os;
      os << who << ": request.times[" << i << "] = " << t << " lies outside (" << d.lo << ", "
         << d.hi << "]";
      throw std::invalid_argument(os.str());
    }
    if (i > 0 && !(t < r.times[i - 1])) {
      std::ostringstream os;
      os << who << ": request.times must be strictly decreasing, got times[" << i - 1
         << "] = " << r.times[i - 1] << ", times[" << i << "] = " << t;
      throw std::invalid_argument(os.str());
    }
  }
  if (!r.x_init.defined() || r.x_init.dim() < 2 || r.x_init.size(0) < 1)
    throw std::invalid_argument(who + ": request.x_init must be a batch [n, ...] with n >= 1");
  if (!at::isFloatingType(r.x_init.scalar_type()))
    throw std::invalid_argument(who + ": request.x_init must be floating point");
  if (sampler.stochastic() && !r.generator)
    throw std::invalid_argument(who + ": stochastic sampler needs request.generator");
  if (sampler.needs_kernel() && !r.sde->schedule())
    throw std::invalid_argument(who + ": needs an SDE with a Gaussian kernel (alpha, sigma); '" +
                                r.sde->name() + "' has none");
}

namespace {
// sum() is finite iff every entry is finite (barring overflow of the sum, itself a blow-up).
bool all_finite(const at::Tensor& x) {
  return std::isfinite(x.sum().item<double>());
}

[[noreturn]] void throw_non_finite(const Sampler& s, const SampleRequest& r, int index,
                                   const at::Tensor& last) {
  std::ostringstream os;
  os << "sampler " << s.name() << ": non-finite values (NaN or inf) ";
  if (r.finite_check == FiniteCheck::EveryStep)
    os << "after step " << index << " from t = " << r.times[index]
       << " to t = " << r.times[index + 1];
  else
    os << "at the end of the run (checked only there: FiniteCheck::EveryStep names the step)";
  throw NonFiniteError(os.str(), index, r.times[index], r.times[index + 1], last);
}
}  // namespace

SampleResult Sampler::run(const SampleRequest& r, const StepObserver& observer) const {
  validate_request(*this, r);
  CountingModel counted(*r.model);
  const SchedulePtr kernel = r.sde->schedule();
  const Predictor predictor(counted, kernel.get());
  at::Generator gen_copy;
  at::Generator* gen = nullptr;
  if (r.generator) {
    gen_copy = *r.generator;  // shares the generator state: draws advance the caller's generator
    gen = &gen_copy;
  }
  const int steps = static_cast<int>(r.times.size()) - 1;
  at::Tensor x = r.x_init;
  for (int i = 0; i < steps; ++i) {
    const StepContext ctx{*r.sde, kernel.get(), predictor, gen, i, steps};
    at::Tensor next = step(ctx, x, r.times[i], r.times[i + 1]);
    if ((r.finite_check == FiniteCheck::EveryStep || i + 1 == steps) && !all_finite(next))
      throw_non_finite(*this, r, i, r.finite_check == FiniteCheck::EveryStep ? x : r.x_init);
    x = std::move(next);
    if (observer) observer(StepInfo{i, steps, r.times[i], r.times[i + 1], x, counted.count()});
  }
  return {x, counted.count()};
}

}  // namespace sdekit
