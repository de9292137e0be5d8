#pragma once
// Parameterizations of one model (docs/theory.md section 3), at a point x_t = alpha x0 + sigma eps:
//   score = -eps / sigma
//   x0    = (x - sigma eps) / alpha          (data prediction)
//   v     = alpha eps - sigma x0             (so eps = (alpha v + sigma x) / (alpha^2 + sigma^2))
//   Denoiser: EDM's D(x; sigma), the data prediction; with alpha = 1, D = x + sigma^2 score.
//   flow  = eps - x0                         (the rectified flow's velocity dx/dt for alpha = 1 - t,
//                                             sigma = t; so eps = (x + alpha u) / (alpha + sigma))
// Conversions are exact algebra; they divide by sigma (to score, from x0) or alpha (to x0), so
// they need sigma > 0 and alpha > 0.
#include <ATen/ATen.h>

#include <string>
#include <string_view>
#include <vector>

namespace sdekit {

enum class Param { Eps, X0, V, Score, Denoiser, Flow };

/// "eps", "x0", "v", "score", "denoiser", "flow"; unknown names throw listing the valid ones.
Param parse_param(std::string_view name);
std::string param_name(Param p);
const std::vector<Param>& all_params();

/// Every conversion is affine in (x, pred): to = cx * x + cp * pred for scalar alpha, sigma.
struct LinearCoeffs {
  double cx = 0.0;
  double cp = 1.0;
};
LinearCoeffs conversion_coefficients(Param from, Param to, double alpha, double sigma);

/// Converts a prediction `pred` made at x from one parameterization to another, for scalar
/// alpha and sigma (one time for the whole batch).
at::Tensor convert(const at::Tensor& pred, Param from, Param to, const at::Tensor& x, double alpha,
                   double sigma);
/// The same with per-row alpha and sigma (tensors broadcastable against x, e.g. [n, 1]).
at::Tensor convert(const at::Tensor& pred, Param from, Param to, const at::Tensor& x,
                   const at::Tensor& alpha, const at::Tensor& sigma);

}  // namespace sdekit
