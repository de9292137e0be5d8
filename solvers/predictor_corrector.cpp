// Predictor-corrector sampling (Song et al. 2021, "Score-based generative modeling through SDEs",
// Algorithms 2-3 and section 4.2; THEORY.md section 4). Each step from s down to t < s makes one
// predictor move, then options.corrector_steps Langevin corrector moves at the new time t (the
// paper's order; their released code runs the corrector before the predictor instead).
//
// Predictor (options.pc_predictor), z ~ N(0, I):
//  - euler-maruyama: x <- x - [f(x,s) - g2(s) score(x,s)] (s - t) + g(s) sqrt(s - t) z.
//  - reverse-diffusion (default; their eq. 46 / ReverseDiffusionPredictor): discretise the
//    forward SDE over the step as x_s = x_t + f_i + G_i z and reverse it:
//      x <- x - f_i + G_i^2 score(x, s) + G_i z.
//    With the SDE's Gaussian kernel, f_i = (alpha_s/alpha_t - 1) x and G_i^2 = sigma_s^2 -
//    (alpha_s/alpha_t)^2 sigma_t^2 (the exact forward transition; on consecutive DDPM / NCSN steps
//    their VP f = (sqrt(1 - beta_i) - 1) x, G = sqrt(beta_i) and VE f = 0, G^2 = sigma_i^2 -
//    sigma_{i-1}^2). Without a kernel, f_i = f(x,s)(s - t), G_i^2 = g2(s)(s - t) (their generic
//    discretisation), which makes it Euler-Maruyama.
//  - ancestral: the posterior step of solvers/ancestral.cpp (mean of q(x_t | x_s, x0_hat), variance
//    per options.variance).
// Corrector (their LangevinCorrector), at time t, repeated corrector_steps times:
//   e = 2 alpha_i (r ||z|| / ||score||)^2,  x <- x + e score(x,t) + sqrt(2 e) z,
// r = options.snr, the norms taken per sample (row) and averaged over the batch, as in their
// code (one e for the whole batch; computed on the device, no sync). alpha_i is their discrete VP
// alpha = 1 - beta_i of the step, here (alpha_s / alpha_t)^2 from the kernel: 1 - beta_n exactly
// on consecutive vp-discrete steps, and 1 for alpha = 1 schedules (ve, edm) and for SDEs without
// a kernel. (On a coarser grid the step's beta is larger, so the corrector's step is smaller.)
//
// Noise: every predictor and corrector move draws noise, the last step's included, so the result
// samples p_{t_end} itself (their optional final "denoise" output, the last predictor's mean, is
// not applied; a data estimate is one predictor().x0 call away). The predictor's noise follows
// request.brownian when given; the corrector's Langevin noise is not a Brownian increment of the
// reverse SDE and always comes from request.generator, which corrector_steps > 0 then needs.
// NFE per step: 1 + corrector_steps. Weak order 1 (the predictor's); stochastic.
#include <cmath>
#include <stdexcept>
#include <string>

#include "solvers/noise.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
class PredictorCorrector final : public FixedStepSampler {
 public:
  explicit PredictorCorrector(const SamplerOptions& o)
      : predictor_(o.pc_predictor), variance_(o.variance), steps_(o.corrector_steps), snr_(o.snr) {
    if (steps_ < 0)
      throw std::invalid_argument("sampler pc: corrector_steps must be >= 0, got " +
                                  std::to_string(steps_));
    if (!(snr_ >= 0.0) || !std::isfinite(snr_))
      throw std::invalid_argument("sampler pc: snr must be >= 0 and finite, got " +
                                  std::to_string(snr_));
  }
  std::string_view name() const override { return "pc"; }
  double order() const override { return 1.0; }
  bool stochastic() const override { return true; }
  int nfe_per_step() const override { return 1 + steps_; }
  bool needs_kernel() const override { return predictor_ == PCPredictor::Ancestral; }

 protected:
  at::Tensor step(const StepContext& ctx, const at::Tensor& x, double s, double t) const override {
    if (steps_ > 0 && !ctx.run.generator)
      throw std::invalid_argument(
          "sampler pc: the Langevin corrector draws its noise from request.generator, which is "
          "not set (request.brownian drives the predictor only); set it or corrector_steps = 0");
    at::Tensor out = predict(ctx, x, s, t);
    const NoiseSchedule* k = ctx.run.kernel;
    const double alpha_i = k ? std::exp(2.0 * (k->log_alpha(s) - k->log_alpha(t))) : 1.0;
    for (int j = 0; j < steps_; ++j) {
      const at::Tensor score = ctx.predictor().score(out, t);
      const at::Tensor z = normal_like(out, ctx.generator());
      const at::Tensor score_norm = score.flatten(1).norm(2, 1).mean();
      const at::Tensor noise_norm = z.flatten(1).norm(2, 1).mean();
      const at::Tensor e = (snr_ * noise_norm / score_norm).pow(2) * (2.0 * alpha_i);
      out = out + e * score + (2.0 * e).sqrt() * z;
    }
    return out;
  }

 private:
  at::Tensor predict(const StepContext& ctx, const at::Tensor& x, double s, double t) const {
    const double h = s - t;
    const NoiseSchedule* k = ctx.run.kernel;
    switch (predictor_) {
      case PCPredictor::EulerMaruyama: {
        const at::Tensor score = ctx.predictor().score(x, s);
        at::Tensor out = x - h * ctx.sde().reverse_drift(x, s, score);
        return out.add_(ctx.run.wiener(x, s, t), std::sqrt(ctx.sde().g2(s)));
      }
      case PCPredictor::ReverseDiffusion: {
        const at::Tensor score = ctx.predictor().score(x, s);
        if (!k) {  // generic discretisation: f_i = f(x,s) h, G_i^2 = g2(s) h (Euler-Maruyama)
          at::Tensor out = x - h * ctx.sde().drift(x, s) + (ctx.sde().g2(s) * h) * score;
          return out.add_(ctx.run.wiener(x, s, t), std::sqrt(ctx.sde().g2(s)));
        }
        const double a_st = std::exp(k->log_alpha(s) - k->log_alpha(t));  // alpha_s / alpha_t
        const double sig_s = k->sigma(s), sig_t = k->sigma(t);
        const double G2 = std::max(0.0, sig_s * sig_s - a_st * a_st * sig_t * sig_t);
        at::Tensor out = (2.0 - a_st) * x + G2 * score;
        return out.add_(ctx.run.standard_normal(x, s, t), std::sqrt(G2));
      }
      case PCPredictor::Ancestral: {
        const double la_s = k->log_alpha(s), la_t = k->log_alpha(t);
        const double sig_s = k->sigma(s), sig_t = k->sigma(t);
        const double a_st = std::exp(la_s - la_t);
        const double v_ts = std::max(0.0, sig_s * sig_s - a_st * a_st * sig_t * sig_t);
        const at::Tensor x0 = ctx.predictor().x0(x, s);
        at::Tensor out = (a_st * sig_t * sig_t / (sig_s * sig_s)) * x +
                         (std::exp(la_t) * v_ts / (sig_s * sig_s)) * x0;
        const double var = variance_ == AncestralVariance::Posterior
                               ? v_ts * sig_t * sig_t / (sig_s * sig_s)
                               : v_ts;
        return out.add_(ctx.run.standard_normal(x, s, t), std::sqrt(var));
      }
    }
    throw std::logic_error("sampler pc: unknown predictor");
  }

  PCPredictor predictor_;
  AncestralVariance variance_;
  int steps_;
  double snr_;
};
}  // namespace

std::unique_ptr<Sampler> make_predictor_corrector(const SamplerOptions& o) {
  return std::make_unique<PredictorCorrector>(o);
}

}  // namespace sdekit
