#pragma once
// The pieces shared by the multistep samplers in sigma~ (lms, ipndm, ipndm-v, deis; docs/theory.md
// sections 4.15 and 4.18): the slope d = (x~ - D) / sigma~ at a grid point (= eps) and the update
// x_t = (alpha_t / alpha_s) x_s + alpha_t sum_j c_j d_j over the newest p slopes of a history.
#include <ATen/ATen.h>

#include <array>

#include "solvers/detail/inplace.hpp"
#include "solvers/detail/multistep.hpp"
#include "solvers/detail/sigma_space.hpp"
#include "solvers/sampler.hpp"

namespace sdekit::detail {

/// d(x~, sigma~) for x = alpha x~ at point p, into `out` (the data prediction in the run buffer
/// "x0").
inline void sigma_slope_into(const RunContext& ctx, const at::Tensor& x, const SigmaPoint& p,
                             at::Tensor& out) {
  at::Tensor& D = ctx.buffer("x0", x);
  predict_into(ctx.predictor, Param::X0, x, p.t, D);
  lincomb(out, {{1.0 / (p.alpha * p.sigma), x}, {-1.0 / p.sigma, D}});
}

/// out = (alpha_t / alpha_s) x + alpha_t sum_{j < p} c_j slopes[j].
inline void sigma_multistep_update(at::Tensor& out, const at::Tensor& x, const SigmaPoint& s,
                                   const SigmaPoint& t, const PredictionHistory<4>& slopes, int p,
                                   const std::array<double, 4>& c) {
  auto term = [&](int j) -> const at::Tensor& { return j < p ? slopes[j] : x; };
  auto coef = [&](int j) { return j < p ? t.alpha * c[static_cast<size_t>(j)] : 0.0; };
  lincomb(out, {{t.alpha / s.alpha, x},
                {coef(0), term(0)},
                {coef(1), term(1)},
                {coef(2), term(2)},
                {coef(3), term(3)}});
}

}  // namespace sdekit::detail
