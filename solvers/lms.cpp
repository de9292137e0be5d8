// Linear multistep in sigma (k-diffusion's sample_lms; docs/theory.md section 4.15), in the scaled
// variables x~ = x / alpha, sigma~ = sigma / alpha of any affine SDE. With the slopes
// d_j = (x~_j - D_j) / sigma~_j at the last p grid points sigma~_i, sigma~_{i-1}, ...,
//   x~_{i+1} = x~_i + sum_j c_j d_{i-j},   c_j = int_{sigma~_i}^{sigma~_{i+1}} l_j(tau) dtau,
// l_j the Lagrange basis polynomial of node sigma~_{i-j} on those p nodes, integrated exactly
// (Gauss-Legendre with 3 points is exact to degree 5 >= p - 1), p = min(order, i + 1). The
// first order - 1 steps, before the history is full, are either classical Runge-Kutta 4 steps in
// sigma~ (lms_start rk4, the default: 4 NFE each, and their first stages are the slopes the
// history needs, so the method keeps its order) or lower-order multistep steps with orders
// 1, 2, ... (lower-order, k-diffusion's: 1 NFE each, but the first steps' larger local errors
// cap the global order, measured about 3 for order 4). The step to sigma~ = 0
// (SampleRequest::to_zero) is taken in full with this formula, as the reference does. 1 NFE per step after the start, order `order` (1 to 4, default 4).
// Works in both directions.
#include <array>
#include <cmath>
#include <stdexcept>
#include <string>

#include "solvers/detail/sigma_multistep.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
using detail::SigmaPoint;

/// int_a^b of the Lagrange basis polynomial of nodes[j] on nodes[0..p).
double lagrange_integral(const std::array<double, 4>& nodes, int p, int j, double a, double b) {
  static constexpr double kX[3] = {-0.7745966692414833770, 0.0, 0.7745966692414833770};
  static constexpr double kW[3] = {5.0 / 9.0, 8.0 / 9.0, 5.0 / 9.0};
  double sum = 0.0;
  for (int q = 0; q < 3; ++q) {
    const double tau = 0.5 * (a + b) + 0.5 * (b - a) * kX[q];
    double l = 1.0;
    for (int m = 0; m < p; ++m)
      if (m != j) l *= (tau - nodes[m]) / (nodes[j] - nodes[m]);
    sum += kW[q] * l;
  }
  return 0.5 * (b - a) * sum;
}

class LMS final : public Sampler {
 public:
  LMS(int order, bool rk4_start) : order_(order), rk4_start_(rk4_start) {
    if (order < 1 || order > 4)
      throw std::invalid_argument("lms: order must lie in [1, 4], got " + std::to_string(order));
  }
  std::string_view name() const override { return "lms"; }
  double order() const override { return order_; }
  bool stochastic() const override { return false; }
  int nfe_per_step() const override { return 1; }
  bool needs_kernel() const override { return true; }
  bool own_step_to_zero() const override { return true; }
  /// Runge-Kutta start: w = order - 1 steps of 4 NFE, then 1 NFE per step.
  int steps_for_nfe(int nfe) const override {
    const int w = rk4_start_ ? order_ - 1 : 0;
    if (nfe < (w > 0 ? 4 : 1))
      throw std::invalid_argument("sampler lms: an NFE budget of " + std::to_string(nfe) +
                                  " buys no step (" + std::to_string(w > 0 ? 4 : 1) +
                                  " NFE for the first step)");
    return nfe > 4 * w ? nfe - 3 * w : nfe / 4;
  }

 protected:
  at::Tensor integrate(const RunContext& ctx, const at::Tensor& x_init) const override {
    const NoiseSchedule& k = *ctx.kernel;
    // With the step to sigma~ = 0 (SampleRequest::to_zero), one more step after the grid's.
    const int steps = ctx.steps() + (ctx.to_zero() ? 1 : 0);
    SigmaPoint zero;  // sigma~ = 0, alpha = 1: the data end
    zero.t = ctx.sde.domain().lo;
    at::Tensor x = x_init;
    detail::PredictionHistory<4> slopes(ctx, "slope");  // d_j in x~, at their sigma~
    SigmaPoint s = SigmaPoint::at(k, ctx.times[0]);
    for (int i = 0; i < steps; ++i) {
      const SigmaPoint t = i < ctx.steps() ? SigmaPoint::at(k, ctx.times[i + 1]) : zero;
      at::Tensor& d = slopes.fresh(x);
      slope(ctx, x, s, d);
      slopes.push(d, s.sigma);
      const int p = std::min(order_, slopes.size());
      std::array<double, 4> nodes{}, c{};
      for (int j = 0; j < p; ++j) nodes[static_cast<size_t>(j)] = slopes.node(j);
      for (int j = 0; j < p; ++j)
        c[static_cast<size_t>(j)] = lagrange_integral(nodes, p, j, s.sigma, t.sigma);
      at::Tensor& next = ctx.state(i, x);
      if (rk4_start_ && i < order_ - 1 && t.sigma > 0.0) {
        rk4_step(ctx, x, d, s, t, next);
        ctx.step_done(i, steps, s.t, t.t, x, next, i + 1 == steps);
        x = next;
        s = t;
        continue;
      }
      detail::sigma_multistep_update(next, x, s, t, slopes, p, c);
      ctx.step_done(i, steps, s.t, t.t, x, next, i + 1 == steps);
      x = next;
      s = t;
    }
    return x;
  }

 private:
  // d(x~, sigma~) for x = alpha x~ at point p, into `out` (x0 prediction in "x0").
  static void slope(const RunContext& ctx, const at::Tensor& x, const SigmaPoint& p,
                    at::Tensor& out) {
    detail::sigma_slope_into(ctx, x, p, out);
  }

  // Classical RK4 in sigma~ from s to t, with k1 = d (already computed at s):
  //   x~_t = x~_s + (h/6) (k1 + 2 k2 + 2 k3 + k4), h = sigma~_t - sigma~_s.
  static void rk4_step(const RunContext& ctx, const at::Tensor& x, const at::Tensor& k1,
                       const SigmaPoint& s, const SigmaPoint& t, at::Tensor& out) {
    const NoiseSchedule& k = *ctx.kernel;
    const double h = t.sigma - s.sigma;
    const SigmaPoint m = SigmaPoint::at_lambda(k, -std::log(s.sigma + 0.5 * h));
    const double hm = m.sigma - s.sigma;  // the midpoint as the schedule gives it
    at::Tensor& u = ctx.buffer("rk4_stage", x);
    at::Tensor& k2 = ctx.buffer("rk4_k", 2, x);
    at::Tensor& k3 = ctx.buffer("rk4_k", 3, x);
    at::Tensor& k4 = ctx.buffer("rk4_k", 4, x);
    detail::lincomb(u, {{m.alpha / s.alpha, x}, {m.alpha * hm, k1}});
    slope(ctx, u, m, k2);
    detail::lincomb(u, {{m.alpha / s.alpha, x}, {m.alpha * hm, k2}});
    slope(ctx, u, m, k3);
    detail::lincomb(u, {{t.alpha / s.alpha, x}, {t.alpha * h, k3}});
    slope(ctx, u, t, k4);
    detail::lincomb(out, {{t.alpha / s.alpha, x},
                          {t.alpha * h / 6.0, k1},
                          {t.alpha * h / 3.0, k2},
                          {t.alpha * h / 3.0, k3},
                          {t.alpha * h / 6.0, k4}});
  }

  int order_;
  bool rk4_start_;
};
}  // namespace

std::unique_ptr<Sampler> make_lms(const SamplerOptions& o) {
  return std::make_unique<LMS>(o.lms_order, o.lms_rk4_start);
}

}  // namespace sdekit
