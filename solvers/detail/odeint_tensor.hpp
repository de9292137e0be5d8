#pragma once
// Boost.Odeint glue for at::Tensor state, kept here once (never included by public headers).
//
// The state goes through vector_space_algebra: every operation acts on whole tensors, and
// default_operations assign new tensors to their outputs (t1 = a1 t2 + a2 t3), so no state is
// ever modified in place. Two traits matter:
//  - copy clones: odeint's default copy is `to = from`, which would alias two tensors;
//  - no resizing: odeint's states start undefined and are bound by the first assignment.
// The infinity norm used by controlled steppers costs one host-device sync per call.
#include <ATen/ATen.h>

#include <boost/numeric/odeint/algebra/default_operations.hpp>
#include <boost/numeric/odeint/algebra/vector_space_algebra.hpp>
#include <boost/numeric/odeint/util/copy.hpp>
#include <boost/numeric/odeint/util/is_resizeable.hpp>

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
