// DPM-Solver++ SDE (k-diffusion's sample_dpmpp_sde; docs/theory.md section 4.15), a stochastic
// singlestep second-order method in the scaled variables x~ = x / alpha, sigma~ = sigma / alpha,
// lambda = -log sigma~. A step from s down to t, h = lambda_t - lambda_s, the intermediate point
// m at lambda_s + r h, and the ancestral splits (d1, u1) of sigma~_s -> sigma~_m and (d2, u2) of
// sigma~_s -> sigma~_t with noise fraction eta:
//   x~_m = (d1 / sigma~_s) x~_s + (1 - d1 / sigma~_s) D_s + s_noise u1 z1,   z1 over [m, s]
//   D'   = (1 - 1/(2r)) D_s + 1/(2r) x0(alpha_m x~_m, m)
//   x~_t = (d2 / sigma~_s) x~_s + (1 - d2 / sigma~_s) D' + s_noise u2 z2,    z2 over [t, s]
// and x_t = alpha_t x~_t ((d / sigma~_s) x~ + (1 - d / sigma~_s) D is the DPM-Solver++ 1 step
// to sigma~ = d, i.e. -expm1(lambda_s - lambda(d)) = 1 - d / sigma~_s). z1 and z2 come from the
// request's Brownian path when it has one (so they are correlated as the path's increments are),
// else they are independent draws. A step to sigma~ = 0 returns D_s. 2 NFE per step; order 1
// (strong order 1 on a shared Brownian path; eta = 0 is DPM-Solver++ 2S with this r, order 2).
// Sampling direction only (with eta = 0, both).
#include <cmath>
#include <stdexcept>
#include <string>

#include "solvers/detail/inplace.hpp"
#include "solvers/detail/sigma_space.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
using detail::SigmaPoint;

class DPMPPSDE final : public FixedStepSampler {
 public:
  DPMPPSDE(double eta, double s_noise, double r) : eta_(eta), s_noise_(s_noise), r_(r) {
    detail::check_noise_options("dpmpp-sde", eta, s_noise);
    if (!(r > 0.0 && r <= 1.0))
      throw std::invalid_argument("dpmpp-sde: r must lie in (0, 1], got " + std::to_string(r));
  }
  std::string_view name() const override { return "dpmpp-sde"; }
  double order() const override { return stochastic() ? 1.0 : 2.0; }
  bool stochastic() const override { return eta_ > 0.0 && s_noise_ > 0.0; }
  int nfe_per_step() const override { return 2; }
  bool needs_kernel() const override { return true; }

 protected:
  void step_into(const StepContext& ctx, const at::Tensor& x, double s_t, double t_t,
                 at::Tensor& out) const override {
    const NoiseSchedule& k = ctx.kernel();
    const auto [s, t, D] = detail::sigma_step(ctx.run, x, s_t, t_t);
    if (t.sigma == 0.0) return detail::lincomb(out, {{t.alpha, D}});
    const double h = t.lambda() - s.lambda();
    const SigmaPoint m = SigmaPoint::at_lambda(k, s.lambda() + r_ * h);
    const double noise = s_noise_;
    // Step 1: to the intermediate point.
    const detail::AncestralSplit a1 = detail::ancestral_split(s.sigma, m.sigma, eta_);
    at::Tensor& z = ctx.run.buffer("noise", x);
    const double q1 = a1.down / s.sigma;
    at::Tensor& u = ctx.run.buffer("intermediate", x);  // alpha_m x~_m
    const bool noisy1 = a1.up > 0.0 && noise > 0.0;
    if (noisy1) ctx.run.standard_normal_into(z, s_t, m.t);
    detail::lincomb(u, {{m.alpha * q1 / s.alpha, x},
                        {m.alpha * (1.0 - q1), D},
                        {noisy1 ? m.alpha * noise * a1.up : 0.0, z}});
    at::Tensor& D2 = ctx.run.buffer("x0_intermediate", x);
    detail::predict_into(ctx.predictor(), Param::X0, u, m.t, D2);
    // Step 2: the whole step with the combined data prediction.
    const double fac = 0.5 / r_;
    const detail::AncestralSplit a2 = detail::ancestral_split(s.sigma, t.sigma, eta_);
    const double q2 = a2.down / s.sigma;
    const bool noisy = a2.up > 0.0 && noise > 0.0;
    if (noisy) ctx.run.standard_normal_into(z, s_t, t_t);
    detail::lincomb(out, {{t.alpha * q2 / s.alpha, x},
                          {t.alpha * (1.0 - q2) * (1.0 - fac), D},
                          {t.alpha * (1.0 - q2) * fac, D2},
                          {noisy ? t.alpha * noise * a2.up : 0.0, z}});
  }

 private:
  double eta_, s_noise_, r_;
};
}  // namespace

std::unique_ptr<Sampler> make_dpmpp_sde(const SamplerOptions& o) {
  return std::make_unique<DPMPPSDE>(o.ancestral_eta, o.s_noise, o.sde_r);
}

}  // namespace sdekit
