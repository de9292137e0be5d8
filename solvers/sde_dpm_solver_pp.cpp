// SDE-DPM-Solver++ (2M) (Lu et al. 2022b, section 4 and appendix): an exponential integrator of
// the reverse SDE written for the data prediction x0. From s down to t, h = lambda_t - lambda_s,
// the reverse SDE's linear part and noise are integrated exactly and x0(lambda) is expanded to
// first order, x0 = x0_s + (lambda - lambda_s) x0':
//   x_t = (sigma_t/sigma_s) e^{-h} x_s + alpha_t (1 - e^{-2h}) x0_s
//         + alpha_t (h + expm1(-2h)/2) x0' + sigma_t sqrt(1 - e^{-2h}) z,
// with x0' = (x0_s - x0_prev) / (lambda_s - lambda_prev) from the previous step (multistep, "2M";
// the first step is SDE-DPM-Solver++ 1: x0' = 0). The coefficient of x0' is the exact integral
// 2 int e^{-2(lambda_t - lambda)} (lambda - lambda_s) dlambda. z is the step's standard normal
// noise from the request's Brownian path (or generator). 1 NFE per step. Declared order 1 (the
// strong order of the noise discretisation); the deterministic part is second order. A step
// ending where sigma = 0 returns alpha_t x0_s with no noise. Sampling direction only. Steps write
// into run buffers and allocate nothing in steady state.
#include <cmath>

#include "solvers/detail/exp_integrator.hpp"
#include "solvers/detail/inplace.hpp"
#include "solvers/detail/multistep.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
using detail::LambdaPoint;

class SDEDPMSolverPP2M final : public Sampler {
 public:
  std::string_view name() const override { return "sde-dpmpp-2m"; }
  double order() const override { return 1.0; }
  bool stochastic() const override { return true; }
  int nfe_per_step() const override { return 1; }
  bool needs_kernel() const override { return true; }

 protected:
  at::Tensor integrate(const RunContext& ctx, const at::Tensor& x_init) const override {
    const NoiseSchedule& k = *ctx.kernel;
    const int steps = ctx.steps();
    at::Tensor x = x_init;
    detail::PredictionHistory<1> prev(ctx, "x0");
    LambdaPoint s = LambdaPoint::at(k, ctx.times[0]);
    for (int i = 0; i < steps; ++i) {
      const LambdaPoint t = LambdaPoint::at(k, ctx.times[i + 1]);
      at::Tensor& m0 = prev.fresh(x);
      detail::predict_into(ctx.predictor, Param::X0, x, s.t, m0);
      at::Tensor& next = ctx.state(i, x);
      if (t.sigma == 0.0) {
        detail::lincomb(next, {{t.alpha, m0}});
      } else {
        const double h = t.lambda - s.lambda;
        const double e2 = -std::expm1(-2.0 * h);  // 1 - e^{-2h}
        const double c =
            prev.size() > 0 ? t.alpha * (h + 0.5 * std::expm1(-2.0 * h)) / (s.lambda - prev.node(0))
                            : 0.0;
        at::Tensor& z = ctx.buffer("noise", x);
        ctx.standard_normal_into(z, s.t, t.t);
        detail::lincomb(next, {{t.sigma / s.sigma * std::exp(-h), x},
                               {t.alpha * e2 + c, m0},
                               {-c, prev.size() > 0 ? prev[0] : m0},
                               {t.sigma * std::sqrt(e2), z}});
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

std::unique_ptr<Sampler> make_sde_dpmpp_2m(const SamplerOptions&) {
  return std::make_unique<SDEDPMSolverPP2M>();
}

}  // namespace sdekit
