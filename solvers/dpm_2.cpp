// DPM2 (Karras et al. 2022's second-order sampler, k-diffusion's sample_dpm_2; docs/theory.md
// section 4.15), deterministic, in the scaled variables x~ = x / alpha, sigma~ = sigma / alpha.
// A step from s to t with d(x~, sigma~) = (x~ - D(x~, sigma~)) / sigma~:
//   sigma~_m = sqrt(sigma~_s sigma~_t) (the midpoint in log sigma~),
//   x~_m = x~_s + (sigma~_m - sigma~_s) d(x~_s, sigma~_s),
//   x~_t = x~_s + (sigma~_t - sigma~_s) d(x~_m, sigma~_m),
// and x_t = alpha_t x~_t. A step to sigma~ = 0 is the Euler step, which returns D (1 NFE).
// 2 NFE per step, order 2. Works in both time directions.
#include <cmath>

#include "solvers/detail/inplace.hpp"
#include "solvers/detail/sigma_space.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
using detail::SigmaPoint;

class DPM2 final : public FixedStepSampler {
 public:
  std::string_view name() const override { return "dpm-2"; }
  double order() const override { return 2.0; }
  bool stochastic() const override { return false; }
  int nfe_per_step() const override { return 2; }
  bool needs_kernel() const override { return true; }

 protected:
  void step_into(const StepContext& ctx, const at::Tensor& x, double s_t, double t_t,
                 at::Tensor& out) const override {
    const NoiseSchedule& k = ctx.kernel();
    const auto [s, t, D] = detail::sigma_step(ctx.run, x, s_t, t_t);
    if (t.sigma == 0.0) return detail::lincomb(out, {{t.alpha, D}});
    // The model is asked at the schedule's own point nearest the log-midpoint.
    const SigmaPoint m = SigmaPoint::at_lambda(k, 0.5 * (s.lambda() + t.lambda()));
    const double q = m.sigma / s.sigma;
    at::Tensor& u = ctx.run.buffer("midpoint", x);  // alpha_m x~_m
    detail::lincomb(u, {{m.alpha * q / s.alpha, x}, {m.alpha * (1.0 - q), D}});
    at::Tensor& D2 = ctx.run.buffer("x0_midpoint", x);
    detail::predict_into(ctx.predictor(), Param::X0, u, m.t, D2);
    const double c = (t.sigma - s.sigma) / m.sigma;  // x~_t = x~_s + c (x~_m - D2)
    detail::lincomb(out, {{t.alpha / s.alpha, x}, {t.alpha * c / m.alpha, u}, {-t.alpha * c, D2}});
  }
};
}  // namespace

std::unique_ptr<Sampler> make_dpm_2(const SamplerOptions&) {
  return std::make_unique<DPM2>();
}

}  // namespace sdekit
