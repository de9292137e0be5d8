// Predictor-corrector sampling (Song et al. 2021, "Score-based generative modeling through SDEs",
// Algorithms 2-3 and section 4.2; docs/theory.md section 4.10). Each step from s down to t < s
// makes one predictor move, then options.corrector_steps Langevin corrector moves at the new time t
// (the paper's order; their released code runs the corrector before the predictor instead).
//
// Predictor (options.pc_predictor), z ~ N(0, I):
//  - euler-maruyama: x <- x - [f(x,s) - g2(s) score(x,s)] (s - t) + g(s) sqrt(s - t) z.
//  - reverse-diffusion (default; their eq. 46 / ReverseDiffusionPredictor): discretise the
//    forward SDE over the step as x_s = x_t + f_i + G_i z and reverse it:
//      x <- x - f_i + G_i^2 score(x, s) + G_i z.
//    With the SDE's Gaussian kernel (the exact forward transition),
//      f_i = (alpha_s/alpha_t - 1) x,   G_i^2 = sigma_s^2 - (alpha_s/alpha_t)^2 sigma_t^2;
//    on consecutive DDPM / NCSN steps these are their VP f = (sqrt(1 - beta_i) - 1) x,
//    G = sqrt(beta_i) and VE f = 0, G^2 = sigma_i^2 - sigma_{i-1}^2. Without a kernel,
//    f_i = f(x,s)(s - t), G_i^2 = g2(s)(s - t) (their generic discretisation), which makes it
//    Euler-Maruyama.
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
// Implementation: the model's raw output enters the updates through Predictor::linear (no score
// or x0 tensor); noise, the corrector's score and its norms live in per-run buffers, and the
// corrector's step size stays a 0-dim tensor: with q = sum_rows ||z|| / sum_rows ||score|| (the
// batch size cancels in the ratio of means),
//   e score + sqrt(2 e) z = 2 alpha_i r^2 q^2 score + 2 sqrt(alpha_i) r q z.
// An AffineSDE's drift f(t) x is folded into the Euler-Maruyama predictor.
// A step allocates nothing in steady state (a Brownian path's query and a user SDE's drift do).
#include <cmath>
#include <stdexcept>
#include <string>

#include "solvers/detail/inplace.hpp"
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
  bool uses_brownian_path() const override { return steps_ == 0; }
  int nfe_per_step() const override { return 1 + steps_; }
  bool needs_kernel() const override { return predictor_ == PCPredictor::Ancestral; }

 protected:
  void step_into(const StepContext& ctx, const at::Tensor& x, double s, double t,
                 at::Tensor& out) const override {
    if (steps_ > 0 && !ctx.run.generator && !ctx.run.has_noise_replay())
      throw std::invalid_argument(
          "sampler pc: the Langevin corrector draws its noise from request.generator, which is "
          "not set (request.brownian drives the predictor only); set it or corrector_steps = 0");
    at::Tensor& z = ctx.run.buffer("noise", x);
    predict_into(ctx, x, s, t, z, out);
    if (steps_ == 0) return;
    const NoiseSchedule* k = ctx.run.kernel;
    const double alpha_i = k ? std::exp(2.0 * (k->log_alpha(s) - k->log_alpha(t))) : 1.0;
    at::Tensor& score = ctx.run.buffer("score", x);
    // Views give the shapes of the row norms [n] and of the 0-dim sums (no storage allocated).
    const at::Tensor rows_like = score.view({score.size(0), -1}).select(1, 0);
    at::Tensor& rows = ctx.run.buffer("row_norms", rows_like);
    at::Tensor& q = ctx.run.buffer("q", rows_like.select(0, 0));
    at::Tensor& q2 = ctx.run.buffer("q2", rows_like.select(0, 0));
    for (int j = 0; j < steps_; ++j) {
      const Predictor::Linear sc = ctx.predictor().linear(Param::Score, out, t);
      detail::lincomb(score, {{sc.cx, out}, {sc.cp, sc.raw}});
      ctx.run.generator_normal_into(z);
      at::norm_out(rows, z.view({z.size(0), -1}), 2, {1}, false);
      at::sum_out(q, rows, {0}, false);
      at::norm_out(rows, score.view({score.size(0), -1}), 2, {1}, false);
      at::sum_out(q2, rows, {0}, false);
      at::div_out(q, q, q2);  // q = sum ||z|| / sum ||score||
      at::mul_out(q2, q, q);
      // x += e score + sqrt(2 e) z, e = 2 alpha_i (r q)^2.
      out.addcmul_(score, q2, 2.0 * alpha_i * snr_ * snr_)
          .addcmul_(z, q, 2.0 * std::sqrt(alpha_i) * snr_);
    }
  }

 private:
  // The predictor's move from x at s to t, written into out; z is a work buffer for its noise.
  void predict_into(const StepContext& ctx, const at::Tensor& x, double s, double t, at::Tensor& z,
                    at::Tensor& out) const {
    const double h = s - t;
    const NoiseSchedule* k = ctx.run.kernel;
    const SDE& sde = ctx.sde();
    ctx.run.standard_normal_into(z, s, t);
    switch (predictor_) {
      case PCPredictor::EulerMaruyama: {
        const double g2 = sde.g2(s);
        if (ctx.run.affine) {
          // Drift f x and score = cx x + cp raw: out = (1 - h f + h g2 cx) x + h g2 cp raw +
          // g sqrt(h) z (as the euler-maruyama sampler).
          const Predictor::Linear sc = ctx.predictor().linear(Param::Score, x, s);
          return detail::lincomb(out, {{1.0 - h * k->f(s) + h * g2 * sc.cx, x},
                                       {h * g2 * sc.cp, sc.raw},
                                       {std::sqrt(g2 * h), z}});
        }
        const at::Tensor score = ctx.predictor().score(x, s);  // a user drift allocates
        out.copy_(x - h * sde.reverse_drift(x, s, score));
        out.add_(z, std::sqrt(g2 * h));
        return;
      }
      case PCPredictor::ReverseDiffusion: {
        const Predictor::Linear sc = ctx.predictor().linear(Param::Score, x, s);
        if (!k) {  // generic discretisation: f_i = f(x,s) h, G_i^2 = g2(s) h (Euler-Maruyama)
          const double g2 = sde.g2(s);
          const at::Tensor f = sde.drift(x, s);  // a user drift allocates
          return detail::lincomb(out, {{1.0 + g2 * h * sc.cx, x},
                                       {g2 * h * sc.cp, sc.raw},
                                       {-h, f},
                                       {std::sqrt(g2 * h), z}});
        }
        const double a_st = std::exp(k->log_alpha(s) - k->log_alpha(t));  // alpha_s / alpha_t
        const double sig_s = k->sigma(s), sig_t = k->sigma(t);
        const double G2 = std::max(0.0, sig_s * sig_s - a_st * a_st * sig_t * sig_t);
        // out = (2 - a_st) x + G2 score + G z.
        return detail::lincomb(
            out, {{2.0 - a_st + G2 * sc.cx, x}, {G2 * sc.cp, sc.raw}, {std::sqrt(G2), z}});
      }
      case PCPredictor::Ancestral: {
        const double la_s = k->log_alpha(s), la_t = k->log_alpha(t);
        const double sig_s = k->sigma(s), sig_t = k->sigma(t);
        const double a_st = std::exp(la_s - la_t);
        const double v_ts = std::max(0.0, sig_s * sig_s - a_st * a_st * sig_t * sig_t);
        const double cx = a_st * sig_t * sig_t / (sig_s * sig_s);
        const double c0 = std::exp(la_t) * v_ts / (sig_s * sig_s);
        const double var = variance_ == AncestralVariance::Posterior
                               ? v_ts * sig_t * sig_t / (sig_s * sig_s)
                               : v_ts;
        // out = cx x + c0 x0 + sqrt(var) z with x0 = lx x + lp raw (as the ancestral sampler).
        const Predictor::Linear x0 = ctx.predictor().linear(Param::X0, x, s);
        return detail::lincomb(out,
                               {{cx + c0 * x0.cx, x}, {c0 * x0.cp, x0.raw}, {std::sqrt(var), z}});
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
