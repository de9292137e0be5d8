// Adaptive embedded Runge-Kutta on the probability-flow ODE dx/dt = f(x,t) - g2(t) score(x,t) / 2
// (docs/theory.md sections 2 and 4.4; Song et al. 2021 sample with RK45), through Boost.Odeint with
// an at::Tensor state (solvers/detail/odeint_tensor.hpp):
//   dopri5      Dormand & Prince 1980, 5(4): 7 stages, first-same-as-last (FSAL): 6 model calls
//               per attempted step (+1 for the first derivative); order 5.
//   cash-karp   Cash & Karp 1990, 5(4): 6 stages: 6 model calls per attempted step, 5 on a retry
//               after a rejection (the first stage, f at the step's start, is kept); order 5.
//   fehlberg78  Fehlberg 1968, 7(8): 13 stages: 13 model calls per attempted step, 12 on a retry;
//               order 8.
// order() is the order of the propagated solution: odeint advances each pair with its
// higher-order member (local extrapolation) and uses the lower one (4, 4, 7) only for the error
// estimate. NFE is counted at the model (rejected steps and FSAL make steps and NFE differ).
//
// Step control: odeint's controlled_runge_kutta with its default error measure, a step dt from
// (t, x) being accepted when
//   err = max_i |err_i| / (atol + rtol (|x_i| + |dt| |dxdt_i|)) <= 1,
// and the step-size rule of detail::HairerStepAdjuster (Hairer & Wanner's standard controller
// with Gustafsson's predictive factor, factors within [0.2, 5]) instead of odeint's default, which
// rejects about every other step on the edm / ve PF-ODE (about twice the NFE at rtol = atol = 1e-6
// on the Gaussian test case). The first trial step is (t_end - t_start) min(0.1,
// tol^(1/(order+1))), tol = min(rtol, atol); the controller corrects a poor guess within a few
// attempts. The error norm is one host-device sync per attempted step (AdaptiveStats in
// solvers/reference.hpp counts them; adaptive_solve() returns them).
//
// The run goes from request.times.front() to times.back() (decreasing samples, increasing
// encodes); a step that would pass the end is shortened to end exactly there, so the model is
// never asked outside [t_end, t_start]. Every accepted step is reported through step_done (steps
// = -1). Controlled mode uses only the two end times. Dense-output mode (options.dense_output,
// dopri5 only: odeint has no dense output for the other two pairs) steps with odeint's
// dense_output_runge_kutta, whose steps do not stop at intermediate request times; it
// interpolates the state there instead (dopri5's 4th-order continuous extension, into
// AdaptiveSolution::observed).
// Shortening its last step restarts the stepper (odeint's initialize), 1 extra model call.
// options.max_steps bounds the attempted (accepted + rejected) steps; running out is a
// std::runtime_error naming the time reached.
#include <boost/numeric/odeint/stepper/controlled_runge_kutta.hpp>
#include <boost/numeric/odeint/stepper/dense_output_runge_kutta.hpp>
#include <boost/numeric/odeint/stepper/runge_kutta_cash_karp54.hpp>
#include <boost/numeric/odeint/stepper/runge_kutta_dopri5.hpp>
#include <boost/numeric/odeint/stepper/runge_kutta_fehlberg78.hpp>
#include <boost/numeric/odeint/util/odeint_error.hpp>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <type_traits>

#include "solvers/detail/odeint_tensor.hpp"
#include "solvers/reference.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
namespace odeint = boost::numeric::odeint;

using Algebra = odeint::vector_space_algebra;
using Ops = odeint::default_operations;
using Dopri5 = odeint::runge_kutta_dopri5<at::Tensor, double, at::Tensor, double, Algebra, Ops>;
using CashKarp =
    odeint::runge_kutta_cash_karp54<at::Tensor, double, at::Tensor, double, Algebra, Ops>;
using Fehlberg78 =
    odeint::runge_kutta_fehlberg78<at::Tensor, double, at::Tensor, double, Algebra, Ops>;
using Checker = detail::CountingErrorChecker<double, Algebra, Ops>;
using Adjuster = detail::HairerStepAdjuster<double, double>;
template <class Stepper>
using Controlled = odeint::controlled_runge_kutta<Stepper, Checker, Adjuster>;
using DenseDopri5 = odeint::dense_output_runge_kutta<Controlled<Dopri5>>;

enum class Method { Dopri5, CashKarp, Fehlberg78 };

struct MethodInfo {
  const char* name;
  int order;  // of the propagated solution
  int stages;
};

MethodInfo info(Method m) {
  switch (m) {
    case Method::Dopri5:
      return {"dopri5", 5, 6};  // 7 stages, the last reused as the next step's first (FSAL)
    case Method::CashKarp:
      return {"cash-karp", 5, 6};
    case Method::Fehlberg78:
      return {"fehlberg78", 8, 13};
  }
  throw std::logic_error("adaptive_rk: unknown method");
}

Method parse_method(std::string_view name) {
  if (name == "dopri5") return Method::Dopri5;
  if (name == "cash-karp") return Method::CashKarp;
  if (name == "fehlberg78") return Method::Fehlberg78;
  throw std::invalid_argument("unknown adaptive Runge-Kutta method '" + std::string(name) +
                              "'; valid: dopri5, cash-karp, fehlberg78");
}

std::string fmt(double v) {
  std::ostringstream os;
  os.precision(10);
  os << v;
  return os.str();
}

/// Bookkeeping shared by the controlled and dense loops.
struct Run {
  const RunContext& ctx;
  const SamplerOptions& opt;
  std::string who;  // "sampler dopri5"
  int order;
  double t0, t1;
  int64_t attempts = 0;  // error-norm evaluations, counted by the checker
  int accepted = 0;

  Checker checker() { return Checker(opt.atol, opt.rtol, &attempts, opt.max_steps); }
  double first_step() const {
    const double tol = std::min(opt.rtol, opt.atol);
    return (t1 - t0) * std::min(0.1, std::pow(tol, 1.0 / (order + 1)));
  }
  [[noreturn]] void budget_exhausted(double t) const {
    throw std::runtime_error(who + ": max_steps = " + std::to_string(opt.max_steps) +
                             " attempted steps exhausted at t = " + fmt(t) +
                             " before reaching t = " + fmt(t1) + " (from t = " + fmt(t0) +
                             "; rtol = " + fmt(opt.rtol) + ", atol = " + fmt(opt.atol) + ")");
  }
  [[noreturn]] void control_failed(double t, const char* what) const {
    throw std::runtime_error(who + ": step size control failed at t = " + fmt(t) + ": " + what);
  }
};

/// Controlled stepper: one try_step per attempt, the derivative at the accepted state kept
/// across rejections (and, for FSAL pairs, taken from the step's last stage).
template <class Stepper>
at::Tensor controlled_loop(Run& run, const at::Tensor& x_init) {
  constexpr bool fsal =
      std::is_same_v<typename Stepper::stepper_category, odeint::explicit_error_stepper_fsal_tag>;
  const detail::PFOdeSystem sys{&run.ctx};
  Controlled<Stepper> stepper(run.checker(), Adjuster(Stepper::error_order_value));
  const double t1 = run.t1;
  double t = run.t0, dt = run.first_step();
  at::Tensor x = x_init, dxdt, x_new, dxdt_new;
  sys(x, dxdt, t);
  while (t != t1) {
    const bool to_end = (t1 - t) / dt <= 1.0;  // this step reaches (or would pass) the end
    double h = to_end ? t1 - t : dt;
    if (t + h == t) run.control_failed(t, ("the step size underflowed to " + fmt(h)).c_str());
    double t_step = t;
    odeint::controlled_step_result res;
    try {
      if constexpr (fsal)
        res = stepper.try_step(sys, x, dxdt, t_step, x_new, dxdt_new, h);
      else
        res = stepper.try_step(sys, x, dxdt, t_step, x_new, h);
    } catch (const detail::StepBudgetExceeded&) {
      run.budget_exhausted(t);
    }
    if (res == odeint::fail) {
      dt = h;  // shrunk by the controller
      continue;
    }
    const double t_next = to_end ? t1 : t_step;
    if (!to_end) dt = h;  // grown by the controller
    const bool final_step = t_next == t1;
    run.ctx.step_done(run.accepted++, -1, t, t_next, x, x_new, final_step);
    x = std::move(x_new);
    t = t_next;
    if (!final_step) {
      if constexpr (fsal)
        dxdt = std::move(dxdt_new);
      else
        sys(x, dxdt, t);
    }
  }
  return x;
}

/// Dense-output dopri5: odeint's dense_output_runge_kutta steps freely and interpolates at the
/// intermediate request times (into `observed`, when given).
at::Tensor dense_loop(Run& run, const at::Tensor& x_init, std::vector<at::Tensor>* observed) {
  const detail::PFOdeSystem sys{&run.ctx};
  const std::vector<double>& times = run.ctx.times;
  const double t0 = run.t0, t1 = run.t1;
  const double dir = t1 > t0 ? 1.0 : -1.0;
  // Steps whose end lies this close to t_end end there (t + (t_end - t) may round off t_end).
  const double end_tol = 1e-13 * std::abs(t1 - t0);
  DenseDopri5 dense{Controlled<Dopri5>(run.checker(), Adjuster(Dopri5::error_order_value))};
  dense.initialize(x_init, t0, run.first_step());
  if (observed) observed->push_back(x_init);
  size_t next_obs = 1;
  bool done = false;
  while (!done) {
    const double t = dense.current_time();
    if ((t1 - t) / dense.current_time_step() < 1.0)  // would pass the end: shorten (1 extra NFE)
      dense.initialize(dense.current_state(), t, t1 - t);
    std::pair<double, double> span;
    try {
      span = dense.do_step(sys);
    } catch (const detail::StepBudgetExceeded&) {
      run.budget_exhausted(t);
    } catch (const odeint::odeint_error& e) {
      run.control_failed(t, e.what());
    }
    done = dir * (t1 - span.second) <= end_tol;
    if (observed) {
      while (next_obs + 1 < times.size() && dir * (times[next_obs] - span.second) <= 0.0) {
        at::Tensor y;
        dense.calc_state(times[next_obs++], y);
        observed->push_back(y);
      }
    }
    run.ctx.step_done(run.accepted++, -1, span.first, done ? t1 : span.second,
                      dense.previous_state(), dense.current_state(), done);
  }
  if (observed) {
    while (next_obs + 1 < times.size()) {  // within end_tol of t_end: inside the last step
      at::Tensor y;
      dense.calc_state(times[next_obs++], y);
      observed->push_back(y);
    }
    observed->push_back(dense.current_state());
  }
  return dense.current_state();
}

class AdaptiveRK final : public Sampler {
 public:
  AdaptiveRK(Method m, const SamplerOptions& o) : method_(m), info_(info(m)), opt_(o) {
    const std::string who = "sampler " + std::string(info_.name);
    if (!(o.rtol > 0.0) || !std::isfinite(o.rtol))
      throw std::invalid_argument(who + ": rtol must be > 0 and finite, got " + fmt(o.rtol));
    if (!(o.atol > 0.0) || !std::isfinite(o.atol))
      throw std::invalid_argument(who + ": atol must be > 0 and finite, got " + fmt(o.atol));
    if (o.max_steps < 1)
      throw std::invalid_argument(who + ": max_steps must be >= 1, got " +
                                  std::to_string(o.max_steps));
    if (o.dense_output && m != Method::Dopri5)
      throw std::invalid_argument(who +
                                  ": dense_output is not available for this pair (odeint has "
                                  "dense output for dopri5 only); use dopri5 or dense_output = "
                                  "false");
  }
  std::string_view name() const override { return info_.name; }
  double order() const override { return info_.order; }
  bool stochastic() const override { return false; }
  int nfe_per_step() const override { return info_.stages; }
  bool adaptive() const override { return true; }

  /// The run behind integrate(), with its accounting (finite_syncs is left to the caller).
  at::Tensor solve(const RunContext& ctx, const at::Tensor& x_init, AdaptiveStats& stats,
                   std::vector<at::Tensor>* observed) const {
    Run run{ctx,
            opt_,
            "sampler " + std::string(info_.name),
            info_.order,
            ctx.times.front(),
            ctx.times.back()};
    at::Tensor x;
    if (opt_.dense_output)
      x = dense_loop(run, x_init, observed);
    else if (method_ == Method::Dopri5)
      x = controlled_loop<Dopri5>(run, x_init);
    else if (method_ == Method::CashKarp)
      x = controlled_loop<CashKarp>(run, x_init);
    else
      x = controlled_loop<Fehlberg78>(run, x_init);
    stats.accepted = run.accepted;
    stats.norm_syncs = run.attempts;
    stats.rejected = static_cast<int>(run.attempts - run.accepted);
    stats.nfe = ctx.nfe();
    return x;
  }

 protected:
  at::Tensor integrate(const RunContext& ctx, const at::Tensor& x_init) const override {
    AdaptiveStats stats;
    return solve(ctx, x_init, stats, nullptr);
  }

 private:
  Method method_;
  MethodInfo info_;
  SamplerOptions opt_;
};
}  // namespace

std::unique_ptr<Sampler> make_dopri5(const SamplerOptions& o) {
  return std::make_unique<AdaptiveRK>(Method::Dopri5, o);
}

std::unique_ptr<Sampler> make_cash_karp(const SamplerOptions& o) {
  return std::make_unique<AdaptiveRK>(Method::CashKarp, o);
}

std::unique_ptr<Sampler> make_fehlberg78(const SamplerOptions& o) {
  return std::make_unique<AdaptiveRK>(Method::Fehlberg78, o);
}

AdaptiveSolution adaptive_solve(std::string_view method, const SamplerOptions& options,
                                const SampleRequest& request, const StepObserver& observer) {
  const AdaptiveRK sampler(parse_method(method), options);
  validate_request(sampler, request);
  CountingModel counted(*request.model);
  const SchedulePtr kernel = request.sde->schedule();
  const Predictor predictor(counted, kernel.get());
  const RunContext ctx(request, predictor, counted, nullptr, observer, sampler.name());
  AdaptiveSolution out;
  out.x =
      sampler.solve(ctx, request.x_init, out.stats, options.dense_output ? &out.observed : nullptr);
  out.stats.finite_syncs = request.finite_check == FiniteCheck::EveryStep ? out.stats.accepted : 1;
  return out;
}

}  // namespace sdekit
