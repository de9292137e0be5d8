// RES multistep (res_multistep; docs/theory.md section 4.19): the second-order exponential
// multistep method in the data prediction whose integral of the linear extrapolation of x0 in
// lambda is exact. With h = lambda_t - lambda_s, h1 = lambda_s - lambda_prev,
// x0' = (x0_s - x0_prev) / h1 and phi0 = -expm1(-h), phi1 = h + expm1(-h):
//   x_t = (sigma_t / sigma_s) x_s + alpha_t [phi0 x0_s + phi1 x0'],
// where DPM-Solver++ 2M puts phi0 h / 2 in place of phi1 (the two agree to O(h^3) per step).
// The first step is DPM-Solver++ 1 (Euler in sigma~); no lowering at the end (the reference's
// only final change is the step to sigma = 0, the order-1 limit here too). Order 2, 1 NFE/step.
#include <cmath>
#include <string>

#include "solvers/detail/exp_integrator.hpp"
#include "solvers/detail/multistep.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
using detail::LambdaPoint;

class ResMultistep final : public Sampler {
 public:
  std::string_view name() const override { return "res-multistep"; }
  double order() const override { return 2; }
  bool stochastic() const override { return false; }
  int nfe_per_step() const override { return 1; }
  bool needs_kernel() const override { return true; }

 protected:
  at::Tensor integrate(const RunContext& ctx, const at::Tensor& x_init) const override {
    const NoiseSchedule& k = *ctx.kernel;
    const int steps = ctx.steps();
    at::Tensor x = x_init;
    LambdaPoint s = LambdaPoint::at(k, ctx.times[0]);
    detail::PredictionHistory<1> prev(ctx, "x0");
    for (int i = 0; i < steps; ++i) {
      const LambdaPoint t = LambdaPoint::at(k, ctx.times[i + 1]);
      at::Tensor& m0 = prev.fresh(x);
      detail::predict_into(ctx.predictor, Param::X0, x, s.t, m0);
      at::Tensor& next = ctx.state(i, x);
      if (prev.size() == 0 || t.singular()) {
        detail::dpm1_x0(x, m0, s, t, next);
      } else {
        const double h = t.lambda - s.lambda, h1 = s.lambda - prev.node(0);
        const double phi0 = -std::expm1(-h), phi1 = h + std::expm1(-h);
        detail::lincomb(next, {{t.sigma / s.sigma, x},
                               {t.alpha * (phi0 + phi1 / h1), m0},
                               {-t.alpha * phi1 / h1, prev[0]}});
      }
      ctx.step_done(i, steps, s.t, t.t, x, next, i + 1 == steps);
      x = next;
      prev.push(m0, s.lambda);
      s = t;
    }
    return x;
  }
};
}  // namespace

std::unique_ptr<Sampler> make_res_multistep(const SamplerOptions&) {
  return std::make_unique<ResMultistep>();
}

}  // namespace sdekit
