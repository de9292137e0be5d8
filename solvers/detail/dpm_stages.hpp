#pragma once
// The stages of singlestep DPM-Solver-2/3 (noise prediction, docs/theory.md section 4.5), shared
// by the fixed-step samplers (dpm-solver-2/3, dpm-solver-fast) and the adaptive ones
// (dpm-solver-12/23). All work tensors are named run buffers.
#include <ATen/ATen.h>

#include <cmath>

#include "solvers/detail/exp_integrator.hpp"
#include "solvers/detail/inplace.hpp"
#include "solvers/sampler.hpp"

namespace sdekit::detail {

/// eps at (x, s), in the run buffer "eps_s" (or the model's own tensor where it needs no copy).
inline const at::Tensor& dpm_eps(const RunContext& run, const at::Tensor& x, double s,
                                 at::Tensor& hold) {
  return predict_ref(run.predictor, Param::Eps, x, s, run.buffer("eps_s", x), hold);
}

/// The first intermediate point: u1 = (alpha_s1/alpha_s) x - sigma_s1 expm1(r1 h) eps_s at
/// s1 = t(lambda_s + r1 h), and D1 = eps(u1, s1) - eps_s (buffer "d1", returned).
inline const at::Tensor& dpm_stage1(const RunContext& run, const at::Tensor& x,
                                    const at::Tensor& eps_s, const LambdaPoint& s, double h,
                                    double r1) {
  const NoiseSchedule& k = *run.kernel;
  const LambdaPoint s1 = LambdaPoint::at(k, k.t_of_lambda(s.lambda + r1 * h));
  at::Tensor& u1 = run.buffer("u1", x);
  at::Tensor& d1 = run.buffer("d1", x);
  lincomb(u1, {{s1.alpha / s.alpha, x}, {-s1.sigma * std::expm1(r1 * h), eps_s}});
  const Predictor::Linear e1 = run.predictor.linear(Param::Eps, u1, s1.t);
  lincomb(d1, {{e1.cp, e1.raw}, {e1.cx, u1}, {-1.0, eps_s}});
  return d1;
}

/// The second intermediate point of order 3: u2 = (alpha_s2/alpha_s) x - sigma_s2 expm1(r2 h)
/// eps_s - sigma_s2 (r2/r1) (expm1(r2 h)/(r2 h) - 1) D1 at s2 = t(lambda_s + r2 h), and
/// D2 = eps(u2, s2) - eps_s (buffer "d2", returned).
inline const at::Tensor& dpm_stage2(const RunContext& run, const at::Tensor& x,
                                    const at::Tensor& eps_s, const at::Tensor& d1,
                                    const LambdaPoint& s, double h, double r1, double r2) {
  const NoiseSchedule& k = *run.kernel;
  const LambdaPoint s2 = LambdaPoint::at(k, k.t_of_lambda(s.lambda + r2 * h));
  const double e2 = std::expm1(r2 * h);
  at::Tensor& u2 = run.buffer("u2", x);
  at::Tensor& d2 = run.buffer("d2", x);
  lincomb(u2, {{s2.alpha / s.alpha, x},
               {-s2.sigma * e2, eps_s},
               {-s2.sigma * r2 / r1 * (e2 / (r2 * h) - 1.0), d1}});
  const Predictor::Linear e2p = run.predictor.linear(Param::Eps, u2, s2.t);
  lincomb(d2, {{e2p.cp, e2p.raw}, {e2p.cx, u2}, {-1.0, eps_s}});
  return d2;
}

/// Order 2 from the first stage: x_t = (alpha_t/alpha_s) x - sigma_t expm1(h) eps_s
/// - sigma_t / (2 r1) expm1(h) D1.
inline void dpm_update2(const at::Tensor& x, const at::Tensor& eps_s, const at::Tensor& d1,
                        const LambdaPoint& s, const LambdaPoint& t, double r1, at::Tensor& out) {
  const double phi_t = t.sigma * std::expm1(t.lambda - s.lambda), r = t.alpha / s.alpha;
  lincomb(out, {{r, x}, {-phi_t, eps_s}, {-phi_t / (2.0 * r1), d1}});
}

/// Order 3 from the second stage: x_t = (alpha_t/alpha_s) x - sigma_t expm1(h) eps_s
/// - (sigma_t / r2) (expm1(h)/h - 1) D2.
inline void dpm_update3(const at::Tensor& x, const at::Tensor& eps_s, const at::Tensor& d2,
                        const LambdaPoint& s, const LambdaPoint& t, double r2, at::Tensor& out) {
  const double h = t.lambda - s.lambda;
  const double phi_t = t.sigma * std::expm1(h), r = t.alpha / s.alpha;
  lincomb(out, {{r, x}, {-phi_t, eps_s}, {-t.sigma / r2 * (std::expm1(h) / h - 1.0), d2}});
}

}  // namespace sdekit::detail
