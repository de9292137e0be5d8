// EDM sampler (Karras et al. 2022, Algorithm 2: stochastic Heun with "churn"), on any affine
// schedule through EDM's scaled formulation (their eq. 4 / Algorithm 1 with s(t) = alpha(t)):
// with x_hat = x / alpha and the noise level sigma_hat = sigma / alpha = exp(-lambda), the
// PF-ODE of every affine schedule is
//   dx_hat / dsigma_hat = (x_hat - D(x_hat; sigma_hat)) / sigma_hat,
// D the model's data prediction x0 (evaluated at x = alpha x_hat at the time t whose
// sigma_hat it is). On alpha = 1 schedules (ve, edm) x_hat = x and for edm sigma_hat = t.
// One step from t_i to t_{i+1} (sigma_hat_i > sigma_hat_{i+1}), N = the grid's step count:
//   gamma_i  = min(S_churn / N, sqrt(2) - 1) if S_tmin <= sigma_hat_i <= S_tmax, else 0
//   s_hat    = sigma_hat_i (1 + gamma_i);  t_hat = t(s_hat)  (from lambda = -log s_hat)
//   x_hat   += sqrt(s_hat^2 - sigma_hat_i^2) S_noise z,  z ~ N(0, I)       (churn: more noise)
//   d        = (x_hat - D(x_hat; t_hat)) / s_hat
//   x'       = x_hat + (sigma_hat_{i+1} - s_hat) d                           (Euler)
//   d'       = (x' - D(x'; t_{i+1})) / sigma_hat_{i+1}
//   x_hat   += (sigma_hat_{i+1} - s_hat) (d + d') / 2                       (Heun)
// and x_{i+1} = alpha_{i+1} x_hat. S_tmin and S_tmax compare against sigma_hat (= t for edm).
// The model exists only on the schedule's domain, so s_hat is capped at sigma_hat(T): on a grid
// that starts at T the first step has no churn. Karras end their grid at sigma = 0 with an Euler
// last step; here every grid ends at t_end > domain.lo (sigma > 0), so every step is Heun.
// With S_churn = 0 this is deterministic Heun in (sigma_hat, x_hat): global order 2 (for edm
// exactly the "heun" sampler); with S_churn > 0 it is stochastic (weak order 1 declared: the
// churn is an Euler-type splitting step). 2 NFE per step.
// Implementation: D = cx x + cp raw (Predictor::linear) is folded into d, d' and the update, so
// the step keeps x_hat (with churn), the model input and d in per-run buffers and writes x'
// straight into the output. A step allocates nothing in steady state (churn noise from a Brownian
// path allocates: the path's query does).
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "solvers/detail/inplace.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {

class EDMHeun final : public FixedStepSampler {
 public:
  explicit EDMHeun(const SamplerOptions& o)
      : churn_(o.s_churn), tmin_(o.s_tmin), tmax_(o.s_tmax), noise_(o.s_noise) {
    auto bad = [](const char* field, const std::string& rule, double v) {
      throw std::invalid_argument("sampler edm-heun: " + std::string(field) + " must be " + rule +
                                  ", got " + std::to_string(v));
    };
    if (!(churn_ >= 0.0) || !std::isfinite(churn_)) bad("s_churn", ">= 0 and finite", churn_);
    if (!(noise_ >= 0.0) || !std::isfinite(noise_)) bad("s_noise", ">= 0 and finite", noise_);
    if (!(tmin_ >= 0.0)) bad("s_tmin", ">= 0", tmin_);
    if (!(tmax_ >= tmin_)) bad("s_tmax", ">= s_tmin", tmax_);
  }
  std::string_view name() const override { return "edm-heun"; }
  double order() const override { return churn_ > 0.0 ? 1.0 : 2.0; }
  bool stochastic() const override { return churn_ > 0.0; }
  int nfe_per_step() const override { return 2; }
  bool needs_kernel() const override { return true; }

 protected:
  void step_into(const StepContext& ctx, const at::Tensor& x, double s, double t,
                 at::Tensor& out) const override {
    const NoiseSchedule& k = ctx.kernel();
    const double sig_s = scaled_sigma(k, s), sig_t = scaled_sigma(k, t), alpha_t = k.alpha(t);
    at::Tensor& in = ctx.run.buffer("model_input", x);
    at::Tensor& d = ctx.run.buffer("slope", x);
    // x_hat = bx * base; the model's first input alpha(t_hat) x_hat is `in1`.
    const at::Tensor* base = &x;
    const at::Tensor* in1 = &x;
    double bx = 1.0 / k.alpha(s);
    double t_hat = s, sig_hat = sig_s;
    if (churn_ > 0.0 && sig_s >= tmin_ && sig_s <= tmax_) {
      const double gamma = std::min(churn_ / ctx.steps, std::sqrt(2.0) - 1.0);
      const double sig_top = scaled_sigma(k, k.domain().hi);
      const double target = std::min(sig_s * (1.0 + gamma), sig_top);
      if (target > sig_s) {
        t_hat = std::max(s, k.t_of_lambda(-std::log(target)));
        sig_hat = scaled_sigma(k, t_hat);  // the level the model is asked at, exactly
        at::Tensor& xh = ctx.run.buffer("churned", x);
        ctx.run.standard_normal_into(in, s, t);
        const double c = noise_ * std::sqrt(std::max(0.0, sig_hat * sig_hat - sig_s * sig_s));
        detail::lincomb(xh, {{bx, x}, {c, in}});  // x / alpha_s + c z
        detail::scale_into(in, k.alpha(t_hat), xh);
        base = &xh;
        in1 = &in;
        bx = 1.0;
      }
    }
    const double h = sig_t - sig_hat;
    // d = (x_hat - D(x_hat; t_hat)) / s_hat, D = cx alpha(t_hat) x_hat + cp raw.
    const Predictor::Linear D1 = ctx.predictor().linear(Param::X0, *in1, t_hat);
    const double d_base = bx * (1.0 - D1.cx * k.alpha(t_hat)) / sig_hat;
    detail::lincomb(d, {{d_base, *base}, {-D1.cp / sig_hat, D1.raw}});
    // Euler: the model's second input is alpha_t x' = alpha_t (x_hat + h d).
    detail::lincomb(in, {{alpha_t * bx, *base}, {alpha_t * h, d}});
    // d' = (x' - D(x'; t)) / sigma_hat_t with x' = in / alpha_t, D = cx in + cp raw, and
    // x_{i+1} = alpha_t (x_hat + h (d + d') / 2).
    const Predictor::Linear D2 = ctx.predictor().linear(Param::X0, in, t);
    const double half = 0.5 * h * alpha_t;
    detail::lincomb(out, {{alpha_t * bx, *base},
                          {half, d},
                          {half * (1.0 / alpha_t - D2.cx) / sig_t, in},
                          {-half * D2.cp / sig_t, D2.raw}});
  }

 private:
  // sigma_hat = sigma / alpha (exact for edm, where it is t).
  static double scaled_sigma(const NoiseSchedule& k, double t) { return k.sigma(t) / k.alpha(t); }

  double churn_, tmin_, tmax_, noise_;
};
}  // namespace

std::unique_ptr<Sampler> make_edm_heun(const SamplerOptions& o) {
  return std::make_unique<EDMHeun>(o);
}

}  // namespace sdekit
