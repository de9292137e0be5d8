// DDIM(eta) (Song, Meng & Ermon 2021) on any grid of an affine schedule, from s down to t < s:
//   x_t = alpha_t x0_hat + sqrt(sigma_t^2 - c^2) eps_hat + c z,
//   c = eta (sigma_t / sigma_s) sqrt(sigma_s^2 - (alpha_s/alpha_t)^2 sigma_t^2)
// (docs/theory.md section 4 with abar = alpha^2, written for any affine kernel). eta = 0 is
// deterministic and equals DPM-Solver-1; eta = 1 with the posterior variance is ancestral
// sampling. 1 NFE per step; order 1. The last step keeps the eta-dependent coefficient of eps
// but draws no noise (for eta = 1 that is the posterior mean, as in DDPM). A step allocates
// nothing in steady state.
#include <cmath>
#include <stdexcept>

#include "solvers/detail/inplace.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
class DDIM final : public FixedStepSampler {
 public:
  explicit DDIM(double eta) : eta_(eta) {
    if (!(eta >= 0.0))
      throw std::invalid_argument("sampler ddim: eta must be >= 0, got " + std::to_string(eta));
  }
  std::string_view name() const override { return "ddim"; }
  double order() const override { return 1.0; }
  bool stochastic() const override { return eta_ > 0.0; }
  int nfe_per_step() const override { return 1; }
  bool needs_kernel() const override { return true; }

 protected:
  void step_into(const StepContext& ctx, const at::Tensor& x, double s, double t,
                 at::Tensor& out) const override {
    const NoiseSchedule& k = ctx.kernel();
    const double sig_s = k.sigma(s), sig_t = k.sigma(t);
    const double alpha_t = k.alpha(t);
    const double a_st = std::exp(k.log_alpha(s) - k.log_alpha(t));
    double c = 0.0;
    if (eta_ > 0.0)
      c = eta_ * (sig_t / sig_s) *
          std::sqrt(std::max(0.0, sig_s * sig_s - a_st * a_st * sig_t * sig_t));
    const double ce = std::sqrt(std::max(0.0, sig_t * sig_t - c * c));
    // alpha_t x0 + ce eps with x0 = (x - sigma_s eps)/alpha_s and eps = ex x + ep raw:
    // out = (alpha_t/alpha_s) x + (ce - alpha_t sigma_s/alpha_s) eps (+ c z).
    const Predictor::Linear eps = ctx.predictor().linear(Param::Eps, x, s);
    const double r = alpha_t / k.alpha(s), ce2 = ce - r * sig_s;
    if (c > 0.0 && !ctx.last()) {
      at::Tensor& z = ctx.run.buffer("noise", x);
      ctx.run.standard_normal_into(z, s, t);
      detail::lincomb(out, {{r + ce2 * eps.cx, x}, {ce2 * eps.cp, eps.raw}, {c, z}});
    } else {
      detail::lincomb(out, {{r + ce2 * eps.cx, x}, {ce2 * eps.cp, eps.raw}});
    }
  }

 private:
  double eta_;
};
}  // namespace

std::unique_ptr<Sampler> make_ddim(const SamplerOptions& o) {
  return std::make_unique<DDIM>(o.eta);
}

}  // namespace sdekit
