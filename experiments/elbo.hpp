#pragma once
// Variational bounds on the negative log-likelihood of a score model (docs/theory.md section 9),
// per row, in nats, with each term apart:
//
// - ddpm_elbo: DDPM's discrete bound under a VP-discrete table (beta_1..beta_N), data x_0 at
//   t = 0:  L_T + sum_{n=2}^{N} L_{n-1} + L_0, with
//     L_T = KL(q(x_N | x_0) || prior),
//     L_{n-1} = KL(q(x_{n-1} | x_n, x_0) || N(mu_theta(x_n, n), s_n^2 I)),  s_n^2 = beta_n or the
//       posterior variance, ||mu~ - mu_theta||^2 = beta_n^2 / ((1 - beta_n)(1 - abar_n)) ||eps -
//       eps_theta||^2,
//     L_0 = -log p(x_0 | x_1) with mean mu_theta(x_1, 1) and variance beta_1: a Gaussian density
//       or, for 8-bit data, the discretized Gaussian (bins of width 2/255, open end bins).
//   The sum over n is estimated from K draws per row, one uniform draw in each of K strata of
//   {2..N} weighted by the stratum's size (K = N - 1: the exact sum).
// - continuous_elbo: the continuous-time bound of the reverse SDE for data y at t_data, in the
//   log-SNR rho = log(a^2 / s^2) of the transition q(x_t | y) = N(a y, s^2 I):
//     KL(q(x_T | y) || prior) + 1/2 integral_{rho_T}^{rho_1} E ||eps - eps_rel||^2 d rho
//     + the Gaussian decoder -log N(y; yhat(x_1), e^{-rho_1} I),
//   with eps_rel = -s score(x_t, t), yhat = (x_1 + s_1^2 score) / a_1 and rho_1 = -2
//   log(decoder_std); the integral by K stratified uniform draws of rho. With the exact score and
//   the exact prior it equals -log p_{t_data}(y) as decoder_std -> 0.
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "models/score_model.hpp"
#include "schedules/noise_schedule.hpp"
#include "schedules/vp_discrete.hpp"

namespace sdekit {

struct ElboOptions {
  int64_t timesteps = 64;           // K draws per row (strata)
  bool posterior_variance = false;  // ddpm: s_n^2 = the posterior variance (else beta_n)
  bool discretized = false;         // ddpm: the 8-bit discretized decoder
  double decoder_std = 1e-3;        // continuous: the decoder's relative standard deviation
  double prior_std = 1.0;           // the Gaussian prior N(0, prior_std^2 I)
  /// Optional exact prior: log p_T(x) per row of x [n, D] (then L_T is a Monte Carlo estimate of
  /// E_q[log q(x_T | data) - log p_T(x_T)] over K draws).
  std::function<at::Tensor(const at::Tensor&)> log_prior;
  /// The draws are row-keyed (docs/theory.md section 10.1): row i of x is row first_row + i of
  /// the run, and its times and noise depend only on (seed, first_row + i), so a run split into
  /// parts gives each row the bound the whole run gives it.
  uint64_t seed = 0;
  int64_t first_row = 0;
  /// The log of the data's mean variance per coordinate for the control variate (NaN: from x;
  /// a split run gives the whole data's, elbo_data_log_variance).
  double log_variance = std::numeric_limits<double>::quiet_NaN();
  at::ScalarType dtype = at::kDouble;  // of the model's inputs
};

/// log of the mean variance per coordinate of data x [n, ...] (0 for a single row).
double elbo_data_log_variance(const at::Tensor& x);

/// Per-row terms [n] in nats (float64) and the model calls of the whole batch.
struct ElboRows {
  at::Tensor total, prior, diffusion, decoder;
  int64_t nfe = 0;
};

/// x0: [n, ...event_shape] data at t = 0. Throws std::invalid_argument for K outside [1, N - 1],
/// N < 2, or (discretized) values off the 8-bit grid {-1 + 2 b / 255}.
ElboRows ddpm_elbo(ScoreModel& model, const VPDiscrete& kernel,
                   const std::vector<int64_t>& event_shape, const at::Tensor& x0,
                   const ElboOptions& o);

/// y: [n, ...event_shape] data at t_data, T the end of the SDE. Throws std::invalid_argument for
/// K < 1, decoder_std outside (0, 1) or one whose rho_1 does not exceed rho_T.
ElboRows continuous_elbo(ScoreModel& model, const NoiseSchedule& kernel,
                         const std::vector<int64_t>& event_shape, const at::Tensor& y,
                         double t_data, double T, const ElboOptions& o);

/// log P(x) elementwise for 8-bit data x in {-1 + 2 b / 255} under N(mean, std^2) discretized to
/// the bins [x - 1/255, x + 1/255] (the end bins open to -inf and +inf), stable in the tails.
at::Tensor discretized_gaussian_log_prob(const at::Tensor& x, const at::Tensor& mean, double std);

}  // namespace sdekit
