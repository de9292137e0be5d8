// DPM-Solver++ 2S ancestral (k-diffusion's sample_dpmpp_2s_ancestral; docs/theory.md section
// 4.15), in the scaled variables x~ = x / alpha, sigma~ = sigma / alpha, lambda = -log sigma~.
// A step from s down to t: (down, up) = ancestral_split(sigma~_s, sigma~_t, eta); with
// h = lambda(down) - lambda_s and the midpoint m at lambda_s + h/2,
//   x~_m = (sigma~_m / sigma~_s) x~_s - expm1(-h/2) D_s,           D_s = x0(x_s, s)
//   x~_t = (down / sigma~_s) x~_s - expm1(-h) D_m + s_noise up z,   D_m = x0(alpha_m x~_m, m)
// and x_t = alpha_t x~_t. Where down = 0 (or sigma~_t = 0) the step is Euler, x~_t = D_s (+ the
// noise). 2 NFE per step; order 1 (strong order 1 on a shared Brownian path; with eta = 0 it is
// DPM-Solver++ 2S, order 2). Sampling direction only (with eta = 0, both).
#include <cmath>
#include <stdexcept>
#include <string>

#include "solvers/detail/inplace.hpp"
#include "solvers/detail/sigma_space.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
using detail::SigmaPoint;

class DPMPP2SAncestral final : public FixedStepSampler {
 public:
  DPMPP2SAncestral(double eta, double s_noise) : eta_(eta), s_noise_(s_noise) {
    detail::check_noise_options("dpmpp-2s-ancestral", eta, s_noise);
  }
  std::string_view name() const override { return "dpmpp-2s-ancestral"; }
  double order() const override { return stochastic() ? 1.0 : 2.0; }
  bool stochastic() const override { return eta_ > 0.0 && s_noise_ > 0.0; }
  int nfe_per_step() const override { return 2; }
  bool needs_kernel() const override { return true; }

 protected:
  void step_into(const StepContext& ctx, const at::Tensor& x, double s_t, double t_t,
                 at::Tensor& out) const override {
    const NoiseSchedule& k = ctx.kernel();
    const auto [s, t, D] = detail::sigma_step(ctx.run, x, s_t, t_t);
    const detail::AncestralSplit a = detail::ancestral_split(s.sigma, t.sigma, eta_);
    const bool noise = a.up > 0.0 && s_noise_ > 0.0;
    at::Tensor& z = ctx.run.buffer("noise", x);
    if (noise) ctx.run.standard_normal_into(z, s_t, t_t);
    const double zc = noise ? t.alpha * s_noise_ * a.up : 0.0;
    if (a.down == 0.0) return detail::lincomb(out, {{t.alpha, D}, {zc, z}});
    const double h = -std::log(a.down) - s.lambda();
    const SigmaPoint m = SigmaPoint::at_lambda(k, s.lambda() + 0.5 * h);
    at::Tensor& u = ctx.run.buffer("midpoint", x);  // alpha_m x~_m
    detail::lincomb(
        u, {{m.alpha * m.sigma / (s.sigma * s.alpha), x}, {-m.alpha * std::expm1(-0.5 * h), D}});
    at::Tensor& D2 = ctx.run.buffer("x0_midpoint", x);
    detail::predict_into(ctx.predictor(), Param::X0, u, m.t, D2);
    detail::lincomb(
        out,
        {{t.alpha * a.down / (s.sigma * s.alpha), x}, {-t.alpha * std::expm1(-h), D2}, {zc, z}});
  }

 private:
  double eta_, s_noise_;
};
}  // namespace

std::unique_ptr<Sampler> make_dpmpp_2s_ancestral(const SamplerOptions& o) {
  return std::make_unique<DPMPP2SAncestral>(o.ancestral_eta, o.s_noise);
}

}  // namespace sdekit
