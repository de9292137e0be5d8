#pragma once
// Boost.Odeint glue for at::Tensor state, kept here once (never included by public headers).
//
// The state goes through vector_space_algebra: every operation acts on whole tensors. Two sets
// of operations are used:
//  - default_operations (the adaptive steppers) assign new tensors to their outputs
//    (t1 = a1 t2 + a2 t3): nothing is modified in place, every stage allocates;
//  - InplaceOperations (the fixed-step Euler, Heun and RK4 samplers) write into the stepper's
//    own state tensors, which odeint allocates once per stepper (resizing is on), so steady-state
//    steps allocate nothing.
// copy clones: odeint's default copy is `to = from`, which would alias two tensors.
// The infinity norm used by controlled steppers costs one host-device sync per call.
// Below them: an error checker that counts those calls (CountingErrorChecker) and the step-size
// rule of the adaptive samplers (HairerStepAdjuster).
#include <ATen/ATen.h>

#include <boost/numeric/odeint/algebra/default_operations.hpp>
#include <boost/numeric/odeint/algebra/vector_space_algebra.hpp>
#include <boost/numeric/odeint/util/copy.hpp>
#include <boost/numeric/odeint/util/is_resizeable.hpp>
#include <boost/numeric/odeint/util/resize.hpp>
#include <boost/numeric/odeint/util/same_size.hpp>
#include <cstdint>

namespace boost {
namespace numeric {
namespace odeint {

template <>
struct is_resizeable<at::Tensor> {
  typedef boost::true_type type;
  static const bool value = true;
};

template <>
struct same_size_impl<at::Tensor, at::Tensor> {
  static bool same_size(const at::Tensor& x1, const at::Tensor& x2) {
    return x1.defined() && x1.sizes() == x2.sizes() && x1.scalar_type() == x2.scalar_type() &&
           x1.device() == x2.device();
  }
};

template <>
struct resize_impl<at::Tensor, at::Tensor> {
  static void resize(at::Tensor& x1, const at::Tensor& x2) {
    x1 = at::empty_like(x2, at::MemoryFormat::Contiguous);
  }
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

#include "solvers/detail/inplace.hpp"
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

/// The PF-ODE right-hand side written into dxdt in place (one model call, no allocation for an
/// AffineSDE: dxdt = (f - g2 cx / 2) x - (g2 cp / 2) raw with score = cx x + cp raw).
struct PFOdeSystemInplace {
  const RunContext* ctx;
  void operator()(const at::Tensor& x, at::Tensor& dxdt, double t) const {
    if (!ctx->affine) {  // a user drift: exact, allocating
      dxdt.copy_(ctx->sde.pf_drift(x, t, ctx->predictor.score(x, t)));
      return;
    }
    const Predictor::Linear s = ctx->predictor.linear(Param::Score, x, t);
    const double f = ctx->affine->f(t), half_g2 = 0.5 * ctx->affine->g2(t);
    lincomb(dxdt, {{f - half_g2 * s.cx, x}, {-half_g2 * s.cp, s.raw}});
  }
};

/// Odeint operations that write into their first argument with in-place kernels (lincomb): the
/// output may be the first source (x = x + dt k), never a later one.
struct InplaceOperations {
  template <class Fac1 = double>
  struct scale_sum1 {
    const Fac1 a1;
    explicit scale_sum1(Fac1 a1) : a1(a1) {}
    void operator()(at::Tensor& t1, const at::Tensor& t2) const { lincomb(t1, {{a1, t2}}); }
    typedef void result_type;
  };
  template <class Fac1 = double, class Fac2 = Fac1>
  struct scale_sum2 {
    const Fac1 a1;
    const Fac2 a2;
    scale_sum2(Fac1 a1, Fac2 a2) : a1(a1), a2(a2) {}
    void operator()(at::Tensor& t1, const at::Tensor& t2, const at::Tensor& t3) const {
      lincomb(t1, {{a1, t2}, {a2, t3}});
    }
    typedef void result_type;
  };
  template <class Fac1 = double, class Fac2 = Fac1, class Fac3 = Fac2>
  struct scale_sum3 {
    const Fac1 a1;
    const Fac2 a2;
    const Fac3 a3;
    scale_sum3(Fac1 a1, Fac2 a2, Fac3 a3) : a1(a1), a2(a2), a3(a3) {}
    void operator()(at::Tensor& t1, const at::Tensor& t2, const at::Tensor& t3,
                    const at::Tensor& t4) const {
      lincomb(t1, {{a1, t2}, {a2, t3}, {a3, t4}});
    }
    typedef void result_type;
  };
  template <class Fac1 = double, class Fac2 = Fac1, class Fac3 = Fac2, class Fac4 = Fac3>
  struct scale_sum4 {
    const Fac1 a1;
    const Fac2 a2;
    const Fac3 a3;
    const Fac4 a4;
    scale_sum4(Fac1 a1, Fac2 a2, Fac3 a3, Fac4 a4) : a1(a1), a2(a2), a3(a3), a4(a4) {}
    void operator()(at::Tensor& t1, const at::Tensor& t2, const at::Tensor& t3,
                    const at::Tensor& t4, const at::Tensor& t5) const {
      lincomb(t1, {{a1, t2}, {a2, t3}, {a3, t4}, {a4, t5}});
    }
    typedef void result_type;
  };
  template <class Fac1 = double, class Fac2 = Fac1, class Fac3 = Fac2, class Fac4 = Fac3,
            class Fac5 = Fac4>
  struct scale_sum5 {
    const Fac1 a1;
    const Fac2 a2;
    const Fac3 a3;
    const Fac4 a4;
    const Fac5 a5;
    scale_sum5(Fac1 a1, Fac2 a2, Fac3 a3, Fac4 a4, Fac5 a5)
        : a1(a1), a2(a2), a3(a3), a4(a4), a5(a5) {}
    void operator()(at::Tensor& t1, const at::Tensor& t2, const at::Tensor& t3,
                    const at::Tensor& t4, const at::Tensor& t5, const at::Tensor& t6) const {
      lincomb(t1, {{a1, t2}, {a2, t3}, {a3, t4}, {a4, t5}, {a5, t6}});
    }
    typedef void result_type;
  };
};

/// A fixed-step explicit Runge-Kutta sampler on the PF-ODE driven by one odeint stepper per run
/// (its stage tensors are allocated once), with InplaceOperations: steady-state steps allocate
/// nothing. Derived provides make_stepper().
template <class Stepper, class Derived>
class OdeintFixedStep : public Sampler {
 public:
  bool stochastic() const override { return false; }

 protected:
  at::Tensor integrate(const RunContext& ctx, const at::Tensor& x_init) const override {
    Stepper stepper = static_cast<const Derived*>(this)->make_stepper();
    const PFOdeSystemInplace sys{&ctx};
    const int steps = ctx.steps();
    at::Tensor x = x_init;
    for (int i = 0; i < steps; ++i) {
      at::Tensor& out = ctx.state(i, x);
      stepper.do_step(sys, x, ctx.times[i], out, ctx.times[i + 1] - ctx.times[i]);
      ctx.step_done(i, steps, ctx.times[i], ctx.times[i + 1], x, out, i + 1 == steps);
      x = out;
    }
    return x;
  }
};

}  // namespace sdekit::detail
