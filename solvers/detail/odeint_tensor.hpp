#pragma once
// Boost.Odeint glue for at::Tensor state, kept here once (never included by public headers).
//
// The state goes through vector_space_algebra: every operation acts on whole tensors, and
// default_operations assign new tensors to their outputs (t1 = a1 t2 + a2 t3), so no state is
// ever modified in place. Two traits matter:
//  - copy clones: odeint's default copy is `to = from`, which would alias two tensors;
//  - no resizing: odeint's states start undefined and are bound by the first assignment.
// The infinity norm used by controlled steppers costs one host-device sync per call.
// Below them: an error checker that counts those calls (CountingErrorChecker) and the step-size
// rule of the adaptive samplers (HairerStepAdjuster).
#include <ATen/ATen.h>

#include <boost/numeric/odeint/algebra/default_operations.hpp>
#include <boost/numeric/odeint/algebra/vector_space_algebra.hpp>
#include <boost/numeric/odeint/util/copy.hpp>
#include <boost/numeric/odeint/util/is_resizeable.hpp>
#include <cstdint>

namespace boost {
namespace numeric {
namespace odeint {

template <>
struct is_resizeable<at::Tensor> {
  typedef boost::false_type type;
  static const bool value = false;
};

template <>
struct copy_impl<at::Tensor, at::Tensor> {
  static void copy(const at::Tensor& from, at::Tensor& to) { to = from.clone(); }
};

template <>
struct vector_space_norm_inf<at::Tensor> {
  typedef double result_type;
  double operator()(const at::Tensor& x) const { return x.abs().max().item<double>(); }  // one sync
};

}  // namespace odeint
}  // namespace numeric
}  // namespace boost

#include <boost/numeric/odeint/stepper/controlled_runge_kutta.hpp>

namespace sdekit::detail {

/// Thrown by CountingErrorChecker when a run has spent its budget of attempted steps; the
/// sampler catches it and reports the time it had reached.
struct StepBudgetExceeded {};

/// odeint's default_error_checker (the scaled error max_i |err_i| / (atol + rtol (|x_i| +
/// |dt| |dxdt_i|)) of a controlled or dense-output Runge-Kutta stepper) that counts its
/// evaluations. Each evaluation is one attempted step (accepted or rejected) and one call of the
/// infinity norm above, i.e. one host-device sync. `evaluations` (may be null) is incremented
/// per call; with budget > 0 the call that would exceed the budget throws StepBudgetExceeded
/// instead (after that attempt's stages were evaluated). Plugs into controlled_runge_kutta in
/// place of the default checker, e.g.
///   controlled_runge_kutta<Stepper, CountingErrorChecker<double, vector_space_algebra,
///                                                        default_operations>>
///       (CountingErrorChecker<...>(atol, rtol, &count, budget))
/// which measures errors exactly as make_controlled(atol, rtol, Stepper()) does.
template <class Value, class Algebra, class Operations>
class CountingErrorChecker
    : public boost::numeric::odeint::default_error_checker<Value, Algebra, Operations> {
  using Base = boost::numeric::odeint::default_error_checker<Value, Algebra, Operations>;

 public:
  explicit CountingErrorChecker(Value atol = 1e-6, Value rtol = 1e-6,
                                int64_t* evaluations = nullptr, int64_t budget = 0)
      : Base(atol, rtol), evaluations_(evaluations), budget_(budget) {}

  template <class State, class Deriv, class Err, class Time>
  Value error(Algebra& algebra, const State& x_old, const Deriv& dxdt_old, Err& x_err,
              Time dt) const {
    if (evaluations_) {
      if (budget_ > 0 && *evaluations_ >= budget_) throw StepBudgetExceeded{};
      ++*evaluations_;
    }
    return Base::error(algebra, x_old, dxdt_old, x_err, dt);
  }

 private:
  int64_t* evaluations_;
  int64_t budget_;
};

/// Step-size rule for controlled_runge_kutta, in place of odeint's default_step_adjuster: the
/// controller of Hairer & Wanner (Solving ODEs II, section IV.8; their RADAU5 code):
///   standard     f = 0.9 err^(-1/k),  k = q + 1, q the order of the embedded (error-estimating)
///                solution, whose local error is O(dt^k);
///   predictive   f_G = 0.9 err^(-1/k) (dt / dt_prev) (err_prev / err)^(1/k) (Gustafsson 1994),
///                with dt_prev, err_prev (>= 0.01) those of the previous accepted step;
/// a rejected step (err > 1) shrinks by f, an accepted one changes by min(f, f_G) (f_G from the
/// second accepted step on), no growth right after a rejection, every factor within [0.2, 5].
/// odeint's default shrinks by err^(-1/(q-1)) and grows only when err < 0.5; on the PF-ODE, whose
/// natural step shrinks like t towards the data end (edm, ve), that makes about every other
/// attempt a rejection, which the predictive factor (it follows the trend of the errors) avoids.
template <class Value, class Time>
class HairerStepAdjuster {
 public:
  explicit HairerStepAdjuster(int error_order = 4) : inv_k_(Value(1) / (error_order + 1)) {}
  Time decrease_step(Time dt, Value error, int /*error_order*/) {
    rejected_ = true;
    return dt * clamp(Value(0.9) * pow_(error, -inv_k_));
  }
  Time increase_step(Time dt, Value error, int /*stepper_order*/) {
    // Zero (and NaN, which the run's finiteness check then reports) count as tiny errors.
    const Value err = error > Value(1e-10) ? error : Value(1e-10);
    Value f = clamp(Value(0.9) * pow_(err, -inv_k_));
    if (have_prev_) {
      const Value g = Value(0.9) * Value(dt / dt_prev_) * pow_(err_prev_ / (err * err), inv_k_);
      const Value gc = clamp(g);
      if (gc < f) f = gc;
    }
    if (rejected_ && f > Value(1)) f = Value(1);
    rejected_ = false;
    have_prev_ = true;
    dt_prev_ = dt;
    err_prev_ = err > Value(0.01) ? err : Value(0.01);
    return dt * f;
  }
  bool check_step_size_limit(Time) const { return true; }
  Time get_max_dt() const { return Time(0); }

 private:
  static Value pow_(Value x, Value p) {
    using std::pow;
    return pow(x, p);
  }
  static Value clamp(Value f) {
    if (!(f > Value(0.2))) return Value(0.2);  // also NaN
    return f > Value(5) ? Value(5) : f;
  }
  Value inv_k_;
  bool rejected_ = false, have_prev_ = false;
  Time dt_prev_ = Time(0);
  Value err_prev_ = Value(1);
};

}  // namespace sdekit::detail

#include "solvers/sampler.hpp"

namespace sdekit::detail {

/// The probability-flow ODE right-hand side dx/dt = f(x,t) - g2(t) score(x,t) / 2, one model
/// call per evaluation.
struct PFOdeSystem {
  const RunContext* ctx;
  void operator()(const at::Tensor& x, at::Tensor& dxdt, double t) const {
    dxdt = ctx->sde.pf_drift(x, t, ctx->predictor.score(x, t));
  }
};

/// A fixed-step explicit Runge-Kutta sampler on the PF-ODE driven by an odeint stepper.
template <class Stepper, class Derived>
class OdeintFixedStep : public FixedStepSampler {
 public:
  bool stochastic() const override { return false; }

 protected:
  at::Tensor step(const StepContext& ctx, const at::Tensor& x, double t_from,
                  double t_to) const override {
    Stepper stepper = static_cast<const Derived*>(this)->make_stepper();
    at::Tensor y = x;  // rebinding, not aliasing: odeint assigns new tensors
    stepper.do_step(PFOdeSystem{&ctx.run}, y, t_from, t_to - t_from);
    return y;
  }
};

}  // namespace sdekit::detail
