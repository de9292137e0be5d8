// DEIS tAB-k (Zhang & Chen 2023; docs/theory.md section 4.18): the exponential integrator with eps
// extrapolated by a polynomial in the SDE's own time t. In the scaled variables of any affine SDE
// (section 4.15) the PF-ODE is dx~/dt = eps(t) dsigma~/dt, so with the Lagrange basis L_j of the
// last p = min(k + 1, i + 1) grid times t_i, t_{i-1}, ... (index 0 newest),
//   x~_{i+1} = x~_i + sum_j C_j eps_{i-j},   C_j = integral_{t_i}^{t_{i+1}} sigma~'(tau) L_j(tau) dtau,
// integrated by parts, C_j = [sigma~ L_j]_{t_i}^{t_{i+1}} - integral sigma~(tau) L_j'(tau) dtau, so
// only sigma~ is needed, by composite Gauss-Legendre (32 panels of 5 points). p = 1 is DDIM. Order
// k + 1, 1 NFE per step; the step to sigma~ = 0 is the final Euler step x = D.
#include <algorithm>
#include <array>
#include <functional>
#include <stdexcept>
#include <string>

#include "solvers/detail/sigma_multistep.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {

std::array<double, 4> deis_coefficients(const std::function<double(double)>& sigma_tilde,
                                        const std::array<double, 4>& nodes, int p, double a,
                                        double b) {
  static constexpr double kX[5] = {-0.9061798459386640, -0.5384693101056831, 0.0,
                                   0.5384693101056831, 0.9061798459386640};
  static constexpr double kW[5] = {0.2369268850561891, 0.4786286704993665, 0.5688888888888889,
                                   0.4786286704993665, 0.2369268850561891};
  constexpr int kPanels = 32;
  const auto P = static_cast<size_t>(p);
  // L_j(tau) and L_j'(tau) on nodes[0..p).
  auto basis = [&](size_t j, double tau, double& value, double& slope) {
    value = 1.0;
    slope = 0.0;
    for (size_t m = 0; m < P; ++m) {
      if (m == j) continue;
      const double den = nodes[j] - nodes[m];
      slope = slope * (tau - nodes[m]) / den + value / den;
      value *= (tau - nodes[m]) / den;
    }
  };
  std::array<double, 4> c{};
  const double sa = sigma_tilde(a), sb = sigma_tilde(b);
  for (size_t j = 0; j < P; ++j) {
    double la, lb, d;
    basis(j, a, la, d);
    basis(j, b, lb, d);
    c[j] = sb * lb - sa * la;
  }
  if (p == 1) return c;
  const double w = (b - a) / kPanels;
  for (int q = 0; q < kPanels; ++q) {
    const double lo = a + q * w;
    for (int g = 0; g < 5; ++g) {
      const double tau = lo + 0.5 * w * (1.0 + kX[g]);
      const double st = sigma_tilde(tau);
      for (size_t j = 0; j < P; ++j) {
        double v, dv;
        basis(j, tau, v, dv);
        c[j] -= 0.5 * w * kW[g] * st * dv;
      }
    }
  }
  return c;
}

namespace {
using detail::SigmaPoint;

class DEIS final : public Sampler {
 public:
  explicit DEIS(int k) : k_(k) {
    if (k < 1 || k > 3)
      throw std::invalid_argument("deis: tAB order k must lie in [1, 3], got " + std::to_string(k));
  }
  std::string_view name() const override { return name_[static_cast<size_t>(k_ - 1)]; }
  double order() const override { return k_ + 1; }
  bool stochastic() const override { return false; }
  int nfe_per_step() const override { return 1; }
  bool needs_kernel() const override { return true; }

 protected:
  at::Tensor integrate(const RunContext& ctx, const at::Tensor& x_init) const override {
    const NoiseSchedule& k = *ctx.kernel;
    const int steps = ctx.steps();
    auto sigma_tilde = [&](double t) { return k.sigma(t) / k.alpha(t); };
    at::Tensor x = x_init;
    detail::PredictionHistory<4> eps(ctx, "eps");
    SigmaPoint s = SigmaPoint::at(k, ctx.times[0]);
    for (int i = 0; i < steps; ++i) {
      const SigmaPoint t = SigmaPoint::at(k, ctx.times[i + 1]);
      at::Tensor& e = eps.fresh(x);
      detail::sigma_slope_into(ctx, x, s, e);
      eps.push(e, s.t);
      const int p = std::min(k_ + 1, eps.size());
      std::array<double, 4> nodes{};
      for (int j = 0; j < p; ++j) nodes[static_cast<size_t>(j)] = eps.node(j);
      const std::array<double, 4> c = deis_coefficients(sigma_tilde, nodes, p, s.t, t.t);
      at::Tensor& next = ctx.state(i, x);
      detail::sigma_multistep_update(next, x, s, t, eps, p, c);
      ctx.step_done(i, steps, s.t, t.t, x, next, i + 1 == steps);
      x = next;
      s = t;
    }
    return x;
  }

 private:
  static constexpr std::array<const char*, 3> name_ = {"deis-1", "deis-2", "deis-3"};
  int k_;
};
}  // namespace

std::unique_ptr<Sampler> make_deis(int k, const SamplerOptions&) {
  return std::make_unique<DEIS>(k);
}

}  // namespace sdekit
