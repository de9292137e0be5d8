// Roessler's SRA3 (A. Roessler, "Runge-Kutta methods for the strong approximation of solutions
// of stochastic differential equations", SIAM J. Numer. Anal. 48(3), 922-952, 2010: the
// additive-noise family SRA): strong order 1.5 for additive noise, deterministic order 3, on the
// reverse-time SDE of docs/theory.md section 2,
//   dx = [f(x,t) - g(t)^2 s(x,t)] dt + g(t) dw-bar,   t running down from s to t < s.
//
// Mapping to forward time. With tau = -t and the Wiener process w-bar(tau) = -W(-tau) (W the
// request's Brownian path, or the generator's noise), the reverse SDE reads
//   dX = a(X, tau) dtau + b(tau) dw-bar(tau),   a(x, tau) = -r(x, -tau),   b(tau) = g(-tau),
// r(x, t) = f(x,t) - g2(t) s(x,t) (SDE::reverse_drift). A step tau_n = -s -> tau_n + h = -t,
// h = s - t > 0, uses I1 = w-bar(tau_n + h) - w-bar(tau_n) = W(s) - W(t) and
// I10 = int_{tau_n}^{tau_n + h} (w-bar(u) - w-bar(tau_n)) du = int_t^s (W(s) - W(u)) du
// (RunContext::wiener_and_area; Var I10 = h^3/3, Cov(I1, I10) = h^2/2). Roessler's scheme
//   H_i = X + h sum_j A0_ij a(tau_n + c0_j h, H_j) + sum_j B0_ij b(tau_n + c1_j h) I10 / h
//   X'  = X + h sum_i alpha_i a(tau_n + c0_i h, H_i)
//           + sum_i (beta1_i I1 + beta2_i I10 / h) b(tau_n + c1_i h)
// becomes, with stage times t_i = s - c0_i h and r_i = r(H_i, t_i),
//   H_i = x - h sum_j A0_ij r_j + sum_j B0_ij g(s - c1_j h) I10 / h
//   x_t = x - h sum_i alpha_i r_i + sum_i (beta1_i I1 + beta2_i I10 / h) g(s - c1_i h).
// SRA3, Roessler's three-stage member of deterministic order 3 (the tableau StochasticDiffEq.jl
// also ships as SRA3):
//   c0 = (0, 1, 1/2), A0 = [0; 1; 1/4 1/4] (Shu & Osher's third-order SSP tableau), alpha = (1/6,
//   1/6, 2/3); c1 = (1, 0, 0), B0 row 3 = (1, 1/2, 0); beta1 = (1, 0, 0), beta2 = (-1, 1, 0).
// It meets the strong order-1.5 conditions for additive, time-dependent noise: alpha.e = 1,
// beta1.e = 1, beta2.e = 0, alpha.(B0 e) = 1, alpha.(A0 e) = 1/2, alpha.(B0 e)^2 = 3/2,
// beta1.c1 = 1, beta2.c1 = -1. The noise term is g(t) (I1 - I10/h) + g(s) I10/h, which matches
// the Ito-Taylor expansion of int g dw-bar to order 1.5: b I1 + b' (h I1 - I10).
// Order: strong 1.5 (additive noise: g depends on t only, as for every SDE here; where the drift
// is linear in x, as for Gaussian data, the order-1.5 error term a''(b, b) vanishes and the strong
// order is 2), weak 2, deterministic 3. 3 NFE per step; noise is added on every step, the last
// included.
// Implementation: the stage drifts r_i live in per-run buffers; on an AffineSDE, r(H, t) =
// (f(t) - g2(t) cx) H - g2(t) cp raw with the model's raw output (Predictor::linear), so no
// score or drift tensor is made. Generator noise is drawn in place, the same draws in the same
// order as RunContext::wiener_and_area (N1 then N2), so the noise matches it bit for bit.
// A step allocates nothing in steady state (a Brownian path's query and a user SDE's drift do).
#include <array>
#include <cmath>

#include "solvers/detail/inplace.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {

constexpr int kStages = 3;
constexpr std::array<double, kStages> kC0 = {0.0, 1.0, 0.5};
constexpr std::array<double, kStages> kC1 = {1.0, 0.0, 0.0};
constexpr double kA0[kStages][kStages] = {{0, 0, 0}, {1.0, 0, 0}, {0.25, 0.25, 0}};
constexpr double kB0[kStages][kStages] = {{0, 0, 0}, {0, 0, 0}, {1.0, 0.5, 0}};
constexpr std::array<double, kStages> kAlpha = {1.0 / 6.0, 1.0 / 6.0, 2.0 / 3.0};
constexpr std::array<double, kStages> kBeta1 = {1.0, 0.0, 0.0};
constexpr std::array<double, kStages> kBeta2 = {-1.0, 1.0, 0.0};

class SRA final : public FixedStepSampler {
 public:
  std::string_view name() const override { return "sra"; }
  double order() const override { return 1.5; }
  bool stochastic() const override { return true; }
  int nfe_per_step() const override { return kStages; }

 protected:
  void step_into(const StepContext& ctx, const at::Tensor& x, double s, double t,
                 at::Tensor& out) const override {
    const SDE& sde = ctx.sde();
    const double h = s - t;
    at::Tensor& I1 = ctx.run.buffer("I1", x);
    at::Tensor& chi = ctx.run.buffer("I10_over_h", x);  // I10 / h
    noise_into(ctx, x, s, t, I1, chi);
    std::array<double, kStages> g{};  // g(s - c1_i h)
    for (int i = 0; i < kStages; ++i) g[i] = sde.diffusion(s - kC1[i] * h);
    std::array<const at::Tensor*, kStages> r{};  // reverse drift at the stages
    for (int i = 0; i < kStages; ++i) {
      at::Tensor& ri = ctx.run.buffer("stage_drift", i, x);
      if (i > 0) {  // H_i, overwritten by r_i below
        ri.copy_(x);
        double noise_coef = 0.0;
        for (int j = 0; j < i; ++j) {
          if (kA0[i][j] != 0.0) ri.add_(*r[j], -h * kA0[i][j]);
          noise_coef += kB0[i][j] * g[j];
        }
        if (noise_coef != 0.0) ri.add_(chi, noise_coef);
      }
      reverse_drift_into(ctx, i > 0 ? ri : x, s - kC0[i] * h, ri);
      r[i] = &ri;
    }
    out.copy_(x);
    double coef_i1 = 0.0, coef_chi = 0.0;
    for (int i = 0; i < kStages; ++i) {
      out.add_(*r[i], -h * kAlpha[i]);
      coef_i1 += kBeta1[i] * g[i];
      coef_chi += kBeta2[i] * g[i];
    }
    out.add_(I1, coef_i1).add_(chi, coef_chi);
  }

 private:
  // r = r(H, t) = f(H, t) - g2(t) score(H, t) (r may be H): one model call.
  static void reverse_drift_into(const StepContext& ctx, const at::Tensor& H, double t,
                                 at::Tensor& r) {
    const SDE& sde = ctx.sde();
    if (ctx.run.affine) {  // f(H, t) = f(t) H: fold it in
      const Predictor::Linear sc = ctx.predictor().linear(Param::Score, H, t);
      const double g2 = sde.g2(t);
      const double cx = ctx.run.affine->f(t) - g2 * sc.cx, cp = -g2 * sc.cp;
      if (sc.raw.is_same(H))  // a model that returns its input
        return detail::scale_into(r, cx + cp, H);
      return detail::lincomb(r, {{cx, H}, {cp, sc.raw}});
    }
    r.copy_(sde.reverse_drift(H, t, ctx.predictor().score(H, t)));  // a user drift allocates
  }

  // I1 = dW and chi = dZ / h of RunContext::wiener_and_area(x, s, t), written into the buffers:
  // from the request's Brownian path, or as the generator's two standard normals N1, N2.
  static void noise_into(const StepContext& ctx, const at::Tensor& x, double s, double t,
                         at::Tensor& I1, at::Tensor& chi) {
    const double h = s - t;
    if (ctx.run.has_brownian()) {
      const BrownianIncrement inc = ctx.run.wiener_and_area(x, s, t);
      I1.copy_(inc.dW);
      at::div_out(chi, inc.dZ, detail::scalar(h, chi.scalar_type()));
      return;
    }
    ctx.run.standard_normal_into(I1, s, t);
    ctx.run.standard_normal_into(chi, s, t);
    // dW = sqrt(h) N1, dZ = sqrt(h^3 / 12) N2 + (h / 2) dW, chi = dZ / h.
    detail::scale_into(I1, std::sqrt(h), I1);
    detail::scale_into(chi, std::sqrt(h * h * h / 12.0), chi);
    chi.add_(I1, 0.5 * h);
    at::div_out(chi, chi, detail::scalar(h, chi.scalar_type()));
  }
};

}  // namespace

std::unique_ptr<Sampler> make_sra(const SamplerOptions&) {
  return std::make_unique<SRA>();
}

}  // namespace sdekit
