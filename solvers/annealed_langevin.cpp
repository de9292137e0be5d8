// Annealed Langevin dynamics (Song & Ermon 2019, NCSN, Algorithm 1; docs/theory.md section 4) over
// the noise levels of the request's grid. x_init is taken as a sample at level times[0]; each
// step from s to t then runs K = options.langevin_steps Langevin moves at level t:
//   x <- x + (a/2) score(x, t) + sqrt(a) z,  z ~ N(0, I),
//   a = e sigma_t^2 / sigma_hat_L^2,  e = options.langevin_eps,  sigma_hat_L = sigma/alpha at
//   times.back() (the smallest level).
// On alpha = 1 schedules (ve, edm) this is NCSN's update verbatim (a_i = e sigma_i^2 / sigma_L^2).
// Other affine schedules (vp, sub-vp) run it in the scaled variable x_hat = x / alpha, whose
// marginals are the data convolved with N(0, sigma_hat^2), sigma_hat = sigma / alpha: NCSN's
// setting. NCSN's step a_hat = e sigma_hat_t^2 / sigma_hat_L^2 on x_hat is the step alpha_t^2 a_hat
// = a above on x, and x_hat carries over between levels, i.e. x is rescaled by alpha_t / alpha_s
// before the moves at level t (a no-op when alpha = 1).
// The result is the last Langevin iterate (noise included; NCSN's Algorithm 1, no final
// denoising step). Needs the SDE's kernel and request.generator (Langevin noise is not a Brownian
// increment of the SDE, so request.brownian is not used). NFE per step (= per noise level after
// the first): K, so a grid of N steps costs K N. The sampler has no convergence order in the step
// count (its bias is set by e and K, not by the grid); order() is 0.
// Implementation: the moves update the output in place, with score = cx x + cp raw
// (Predictor::linear) folded in and the noise drawn into a per-run buffer. A step allocates
// nothing in steady state.
#include <cmath>
#include <stdexcept>
#include <string>

#include "solvers/detail/inplace.hpp"
#include "solvers/noise.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
class AnnealedLangevin final : public FixedStepSampler {
 public:
  explicit AnnealedLangevin(const SamplerOptions& o) : K_(o.langevin_steps), eps_(o.langevin_eps) {
    if (K_ < 1)
      throw std::invalid_argument("sampler annealed-langevin: langevin_steps must be >= 1, got " +
                                  std::to_string(K_));
    if (!(eps_ > 0.0) || !std::isfinite(eps_))
      throw std::invalid_argument(
          "sampler annealed-langevin: langevin_eps must be > 0 and finite, got " +
          std::to_string(eps_));
  }
  std::string_view name() const override { return "annealed-langevin"; }
  double order() const override { return 0.0; }
  bool stochastic() const override { return true; }
  bool uses_brownian_path() const override { return false; }
  int nfe_per_step() const override { return K_; }
  bool needs_kernel() const override { return true; }

 protected:
  void step_into(const StepContext& ctx, const at::Tensor& x, double s, double t,
                 at::Tensor& out) const override {
    if (!ctx.run.generator && !ctx.run.has_noise_replay())
      throw std::invalid_argument(
          "sampler annealed-langevin: Langevin noise comes from request.generator, which is not "
          "set (request.brownian is not used by this sampler)");
    const NoiseSchedule& k = ctx.kernel();
    const double t_last = ctx.run.times.back();
    const double sig_hat_last = k.sigma(t_last) / k.alpha(t_last);
    const double sig_t = k.sigma(t);
    const double a = eps_ * (sig_t * sig_t) / (sig_hat_last * sig_hat_last);
    const double scale = std::exp(k.log_alpha(t) - k.log_alpha(s));  // alpha_t / alpha_s
    detail::scale_into(out, scale, x);
    at::Tensor& z = ctx.run.buffer("noise", x);
    const double half = 0.5 * a, root = std::sqrt(a);
    for (int j = 0; j < K_; ++j) {
      const Predictor::Linear sc = ctx.predictor().linear(Param::Score, out, t);
      ctx.run.generator_normal_into(z);
      // out += half (cx out + cp raw) + root z.
      if (sc.raw.is_same(out))  // a model that returns its input
        detail::lincomb(out, {{1.0 + half * (sc.cx + sc.cp), out}, {root, z}});
      else
        detail::lincomb(out, {{1.0 + half * sc.cx, out}, {half * sc.cp, sc.raw}, {root, z}});
    }
  }

 private:
  int K_;
  double eps_;
};
}  // namespace

std::unique_ptr<Sampler> make_annealed_langevin(const SamplerOptions& o) {
  return std::make_unique<AnnealedLangevin>(o);
}

}  // namespace sdekit
