// Ancestral sampling (DDPM, Ho et al. 2020) on any grid of an affine schedule. From s down to
// t < s, with alpha_ts = alpha_t/alpha_s and the forward transition variance
//   v_ts = sigma_s^2 - (alpha_s/alpha_t)^2 sigma_t^2     (x_s | x_t has variance v_ts)
// the step draws from q(x_t | x_s, x0_hat):
//   mean = (alpha_s/alpha_t) sigma_t^2 / sigma_s^2 x_s + alpha_t v_ts / sigma_s^2 x0_hat
//   var  = v_ts sigma_t^2 / sigma_s^2   (posterior: DDPM's beta-tilde_n on consecutive steps)
//       or v_ts                        (transition: DDPM's beta_n on consecutive steps).
// On consecutive steps of vp-discrete this is DDPM's update (docs/theory.md section 4.2). No noise
// on the last step.
// 1 NFE per step; weak order 1. A step allocates nothing in steady state.
#include <cmath>

#include "solvers/detail/inplace.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
class Ancestral final : public FixedStepSampler {
 public:
  explicit Ancestral(AncestralVariance v) : variance_(v) {}
  std::string_view name() const override { return "ancestral"; }
  double order() const override { return 1.0; }
  bool stochastic() const override { return true; }
  int nfe_per_step() const override { return 1; }
  bool needs_kernel() const override { return true; }

 protected:
  void step_into(const StepContext& ctx, const at::Tensor& x, double s, double t,
                 at::Tensor& out) const override {
    const NoiseSchedule& k = ctx.kernel();
    const double la_s = k.log_alpha(s), la_t = k.log_alpha(t);
    const double sig_s = k.sigma(s), sig_t = k.sigma(t);
    const double a_st = std::exp(la_s - la_t);  // alpha_s / alpha_t
    const double v_ts = std::max(0.0, sig_s * sig_s - a_st * a_st * sig_t * sig_t);
    const double cx = a_st * sig_t * sig_t / (sig_s * sig_s);
    const double c0 = std::exp(la_t) * v_ts / (sig_s * sig_s);
    // out = cx x + c0 x0 with x0 = lx x + lp raw (no converted tensor).
    const Predictor::Linear x0 = ctx.predictor().linear(Param::X0, x, s);
    if (ctx.last()) return detail::lincomb(out, {{cx + c0 * x0.cx, x}, {c0 * x0.cp, x0.raw}});
    const double var =
        variance_ == AncestralVariance::Posterior ? v_ts * sig_t * sig_t / (sig_s * sig_s) : v_ts;
    at::Tensor& z = ctx.run.buffer("noise", x);
    ctx.run.standard_normal_into(z, s, t);
    detail::lincomb(out, {{cx + c0 * x0.cx, x}, {c0 * x0.cp, x0.raw}, {std::sqrt(var), z}});
  }

 private:
  AncestralVariance variance_;
};
}  // namespace

std::unique_ptr<Sampler> make_ancestral(const SamplerOptions& o) {
  return std::make_unique<Ancestral>(o.variance);
}

}  // namespace sdekit
