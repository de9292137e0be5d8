// Euler ancestral (k-diffusion's sample_euler_ancestral; docs/theory.md section 4.15), in the
// scaled variables x~ = x / alpha, sigma~ = sigma / alpha of any affine SDE. A step from s down
// to t splits sigma~_t into the part reached deterministically and fresh noise,
//   (down, up) = ancestral_split(sigma~_s, sigma~_t, eta),
//   x~_t = x~_s + (down - sigma~_s) (x~_s - D) / sigma~_s + s_noise up z,   D = x0(x_s, s),
// and x_t = alpha_t x~_t. eta = 1 is DDPM's posterior noise (the reverse SDE as the steps
// shrink); eta = 0 is Euler on the PF-ODE in sigma~. A step to sigma~ = 0 returns D. 1 NFE per
// step, order 1 (strong order 1 on a shared Brownian path). Sampling direction only (with
// eta = 0, both).
#include <stdexcept>
#include <string>

#include "solvers/detail/inplace.hpp"
#include "solvers/detail/sigma_space.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
using detail::SigmaPoint;

class EulerAncestral final : public FixedStepSampler {
 public:
  EulerAncestral(double eta, double s_noise) : eta_(eta), s_noise_(s_noise) {
    detail::check_noise_options("euler-ancestral", eta, s_noise);
  }
  std::string_view name() const override { return "euler-ancestral"; }
  double order() const override { return 1.0; }
  bool stochastic() const override { return eta_ > 0.0 && s_noise_ > 0.0; }
  int nfe_per_step() const override { return 1; }
  bool needs_kernel() const override { return true; }

 protected:
  void step_into(const StepContext& ctx, const at::Tensor& x, double s_t, double t_t,
                 at::Tensor& out) const override {
    const auto [s, t, D] = detail::sigma_step(ctx.run, x, s_t, t_t);
    if (t.sigma == 0.0) return detail::lincomb(out, {{t.alpha, D}});
    const detail::AncestralSplit a = detail::ancestral_split(s.sigma, t.sigma, eta_);
    const double q = a.down / s.sigma;
    const bool noisy = a.up > 0.0 && s_noise_ > 0.0;
    at::Tensor& z = ctx.run.buffer("noise", x);
    if (noisy) ctx.run.standard_normal_into(z, s_t, t_t);
    detail::lincomb(out, {{t.alpha * q / s.alpha, x},
                          {t.alpha * (1.0 - q), D},
                          {noisy ? t.alpha * s_noise_ * a.up : 0.0, z}});
  }

 private:
  double eta_, s_noise_;
};
}  // namespace

std::unique_ptr<Sampler> make_euler_ancestral(const SamplerOptions& o) {
  return std::make_unique<EulerAncestral>(o.ancestral_eta, o.s_noise);
}

}  // namespace sdekit
