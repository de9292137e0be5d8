// DPM-Solver++ 2M SDE and 3M SDE (k-diffusion's sample_dpmpp_2m_sde and sample_dpmpp_3m_sde;
// docs/theory.md section 4.15), multistep, in the scaled variables x~ = x / alpha,
// sigma~ = sigma / alpha, lambda = -log sigma~. A step from s down to t, h = lambda_t -
// lambda_s, with noise fraction eta and data predictions D_s, D_1, D_2 at the last grid points:
//   x~_t = (sigma~_t / sigma~_s) e^{-eta h} x~_s + (-expm1(-(1 + eta) h)) D_s + corr
//          + s_noise sigma~_t sqrt(-expm1(-2 eta h)) z,
// and x_t = alpha_t x~_t. With H = (1 + eta) h and h_1, h_2 the previous steps' h:
// 2M (r = h_1 / h, from the second step on):
//   midpoint: corr = (1 - e^{-H}) / (2r) (D_s - D_1)
//   heun:     corr = (1 - (1 - e^{-H}) / H) / r (D_s - D_1)
// 3M (phi_2 = 1 - (1 - e^{-H}) / H, phi_3 = phi_2 / H - 1/2, r0 = h_1/h, r1 = h_2/h,
// d1_0 = (D_s - D_1)/r0, d1_1 = (D_1 - D_2)/r1):
//   third step on: corr = phi_2 (d1_0 + (d1_0 - d1_1) r0/(r0 + r1)) - phi_3 (d1_0 - d1_1)/(r0 + r1)
//   second step:   corr = phi_2 d1_0.
// A step to sigma~ = 0 returns D_s. 1 NFE per step; order 1 (strong order 1 on a shared Brownian
// path; with eta = 0 the deterministic multistep methods of order 2 and 3). Sampling direction
// only (with eta = 0, both).
#include <cmath>
#include <stdexcept>
#include <string>

#include "solvers/detail/inplace.hpp"
#include "solvers/detail/multistep.hpp"
#include "solvers/detail/sigma_space.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
using detail::SigmaPoint;

class DPMPPMultistepSDE final : public Sampler {
 public:
  DPMPPMultistepSDE(int order, const SamplerOptions& o)
      : order_(order), eta_(o.ancestral_eta), s_noise_(o.s_noise), heun_(o.sde_solver_heun) {
    name_ = order == 2 ? "dpmpp-2m-sde" : "dpmpp-3m-sde";
    detail::check_noise_options(name_, eta_, s_noise_);
  }
  std::string_view name() const override { return name_; }
  double order() const override { return stochastic() ? 1.0 : order_; }
  bool stochastic() const override { return eta_ > 0.0 && s_noise_ > 0.0; }
  int nfe_per_step() const override { return 1; }
  bool needs_kernel() const override { return true; }

 protected:
  at::Tensor integrate(const RunContext& ctx, const at::Tensor& x_init) const override {
    const NoiseSchedule& k = *ctx.kernel;
    const int steps = ctx.steps();
    at::Tensor x = x_init;
    detail::PredictionHistory<2> prev(ctx, "x0");  // D_1, D_2 and their steps' h
    double h1 = 0, h2 = 0;
    SigmaPoint s = SigmaPoint::at(k, ctx.times[0]);
    for (int i = 0; i < steps; ++i) {
      const SigmaPoint t = SigmaPoint::at(k, ctx.times[i + 1]);
      at::Tensor& D = prev.fresh(x);
      detail::predict_into(ctx.predictor, Param::X0, x, s.t, D);
      at::Tensor& next = ctx.state(i, x);
      double h = 0;
      if (t.sigma == 0.0) {
        detail::lincomb(next, {{t.alpha, D}});
      } else {
        h = t.lambda() - s.lambda();
        const double eh = eta_ * h, H = h + eh;
        const double cD = -std::expm1(-H);  // 1 - e^{-H}
        // corr = c0 D_s + c1 D_1 + c2 D_2.
        double c0 = 0, c1 = 0, c2 = 0;
        const int n = prev.size();
        if (order_ == 2 && n >= 1) {
          const double r = h1 / h;
          const double w = heun_ ? (cD / -H + 1.0) / r : 0.5 * cD / r;
          c0 = w;
          c1 = -w;
        } else if (order_ == 3 && n >= 2) {
          const double r0 = h1 / h, r1 = h2 / h;
          const double phi2 = cD / -H + 1.0, phi3 = phi2 / H - 0.5;
          // d1_0 = (D_s - D_1)/r0, d1_1 = (D_1 - D_2)/r1,
          // corr = phi2 (d1_0 + (d1_0 - d1_1) r0/(r0 + r1)) - phi3 (d1_0 - d1_1)/(r0 + r1).
          const double a = phi2 * (1.0 + r0 / (r0 + r1)) - phi3 / (r0 + r1);  // on d1_0
          const double b = -phi2 * r0 / (r0 + r1) + phi3 / (r0 + r1);         // on d1_1
          c0 = a / r0;
          c1 = -a / r0 + b / r1;
          c2 = -b / r1;
        } else if (order_ == 3 && n == 1) {
          const double phi2 = cD / -H + 1.0;
          c0 = phi2 / (h1 / h);
          c1 = -c0;
        }
        const bool noisy = eta_ > 0.0 && s_noise_ > 0.0;
        at::Tensor& z = ctx.buffer("noise", x);
        if (noisy) ctx.standard_normal_into(z, s.t, t.t);
        const double A = t.alpha;
        detail::lincomb(
            next, {{A * t.sigma / s.sigma * std::exp(-eh) / s.alpha, x},
                   {A * (cD + c0), D},
                   {A * c1, n >= 1 ? prev[0] : D},
                   {A * c2, n >= 2 ? prev[1] : D},
                   {noisy ? A * s_noise_ * t.sigma * std::sqrt(-std::expm1(-2.0 * eh)) : 0.0, z}});
      }
      ctx.step_done(i, steps, s.t, t.t, x, next, i + 1 == steps);
      x = next;
      prev.push(D, s.lambda());
      h2 = h1;
      h1 = h;
      s = t;
    }
    return x;
  }

 private:
  int order_;
  double eta_, s_noise_;
  bool heun_;
  std::string name_;
};
}  // namespace

std::unique_ptr<Sampler> make_dpmpp_multistep_sde(int order, const SamplerOptions& o) {
  return std::make_unique<DPMPPMultistepSDE>(order, o);
}

}  // namespace sdekit
