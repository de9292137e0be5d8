// SA-Solver (Xue et al. 2023, "SA-Solver: Stochastic Adams Solver for Fast Sampling of Diffusion
// Models"; docs/theory.md section 4.22), data-prediction form, multistep in lambda. The SDE
//   dx = [f x - (1 + tau^2)/2 g^2 score] dt + tau g dW-bar
// has the reverse SDE at tau = 1 and the PF-ODE at tau = 0. With tau constant over a step from s
// to t, h = lambda_t - lambda_s and c = 1 + tau^2, its solution is
//   x_t = (sigma_t / sigma_s) e^{-tau^2 h} x_s + alpha_t int_{lambda_s}^{lambda_t} c e^{-c (lambda_t - l)} x0(l) dl
//         + sigma_t sqrt(1 - e^{-2 tau^2 h}) z,
// and SA-Solver replaces x0(l) by the Lagrange polynomial through data predictions:
//   SA-Predictor of order p: D_s and the p - 1 before it (Adams-Bashforth);
//   SA-Corrector of order q: the new point D_t = x0(x_t^pred, t), D_s and the q - 2 before it
//   (Adams-Moulton), with the predictor's z.
// The weights int c e^{-c (lambda_t - l)} L_j(l) dl are computed by 20-point Gauss-Legendre
// quadrature in l (exact to rounding for these smooth integrands). The corrector's model call is
// the next step's D_s: 1 NFE per step, the last step uncorrected (NFE = steps). tau is the
// constant sa-tau where sigma~ = sigma / alpha at the step's start lies in [sa-tau-min,
// sa-tau-max], else 0. Warm-up orders min(p, i + 1), min(q, i + 2); grids under 10 steps lower
// the final steps' orders (--lower-order-final). A step to sigma = 0 returns D_s.
#include <array>
#include <boost/math/quadrature/gauss.hpp>
#include <cmath>
#include <stdexcept>
#include <string>

#include "solvers/detail/exp_integrator.hpp"
#include "solvers/detail/inplace.hpp"
#include "solvers/detail/multistep.hpp"
#include "solvers/detail/sigma_space.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {

std::array<double, 5> sa_solver_weights(const std::array<double, 5>& nodes, int n, double ls,
                                        double lt, double c) {
  if (n < 1 || n > 5) throw std::invalid_argument("sa_solver_weights: 1 to 5 nodes");
  std::array<double, 5> w{};
  const double h = lt - ls;
  // In u = (l - ls) / h the nodes and the integrand stay of order 1 for every step size.
  std::array<double, 5> u{};
  for (int m = 0; m < n; ++m) u[size_t(m)] = (nodes[size_t(m)] - ls) / h;
  using GL = boost::math::quadrature::gauss<double, 20>;
  for (int j = 0; j < n; ++j) {
    auto f = [&](double v) {
      double L = 1.0;
      for (int m = 0; m < n; ++m)
        if (m != j) L *= (v - u[size_t(m)]) / (u[size_t(j)] - u[size_t(m)]);
      return c * h * std::exp(-c * h * (1.0 - v)) * L;
    };
    w[size_t(j)] = GL::integrate(f, 0.0, 1.0);
  }
  return w;
}

namespace {
using detail::LambdaPoint;

class SASolver final : public Sampler {
 public:
  explicit SASolver(const SamplerOptions& o)
      : p_(o.sa_predictor_order),
        q_(o.sa_corrector_order),
        tau_(o.sa_tau),
        tau_min_(o.sa_tau_min),
        tau_max_(o.sa_tau_max),
        s_noise_(o.s_noise),
        lower_final_(o.lower_order_final) {
    if (p_ < 1 || p_ > 4)
      throw std::invalid_argument("sa-solver: --sa-predictor-order must lie in 1 .. 4, got " +
                                  std::to_string(p_));
    if (q_ < 0 || q_ > 4)
      throw std::invalid_argument(
          "sa-solver: --sa-corrector-order must lie in 0 .. 4 (0: no corrector), got " +
          std::to_string(q_));
    if (!(tau_ >= 0.0) || !std::isfinite(tau_))
      throw std::invalid_argument("sa-solver: --sa-tau must be finite and >= 0, got " +
                                  std::to_string(tau_));
    if (!(tau_min_ >= 0.0) || !(tau_max_ >= tau_min_))
      throw std::invalid_argument(
          "sa-solver: the noise interval needs 0 <= --sa-tau-min <= --sa-tau-max, got [" +
          std::to_string(tau_min_) + ", " + std::to_string(tau_max_) + "]");
    detail::check_noise_options("sa-solver", 0.0, s_noise_);
  }
  std::string_view name() const override { return "sa-solver"; }
  double order() const override {
    if (stochastic()) return 1.0;
    return q_ >= 1 ? std::min(q_, p_ + 1) : p_;
  }
  bool stochastic() const override { return tau_ > 0.0 && s_noise_ > 0.0; }
  // The reverse SDE itself (tau = 1 everywhere) is driven by the Brownian path's increments.
  bool uses_brownian_path() const override {
    return stochastic() && tau_ == 1.0 && tau_min_ == 0.0 && std::isinf(tau_max_) &&
           s_noise_ == 1.0;
  }
  int nfe_per_step() const override { return 1; }
  bool needs_kernel() const override { return true; }

 protected:
  at::Tensor integrate(const RunContext& ctx, const at::Tensor& x_init) const override {
    const NoiseSchedule& k = *ctx.kernel;
    const int steps = ctx.steps();
    at::Tensor x = x_init;
    LambdaPoint s = LambdaPoint::at(k, ctx.times[0]);
    detail::PredictionHistory<4> hist(ctx, "x0");  // hist[0] = D_s, then the earlier ones
    at::Tensor& first = hist.fresh(x);
    detail::predict_into(ctx.predictor, Param::X0, x, s.t, first);
    hist.push(first, s.lambda);
    for (int i = 0; i < steps; ++i) {
      const LambdaPoint t = LambdaPoint::at(k, ctx.times[i + 1]);
      const bool last = i + 1 == steps;
      at::Tensor& next = ctx.state(i, x);
      at::Tensor m_t;
      if (t.singular()) {
        detail::dpm1_x0(x, hist[0], s, t, next);
      } else {
        const int p = std::min(detail::multistep_order(p_, i, steps, lower_final_), hist.size());
        int q = last ? 0 : std::min(q_, hist.size() + 1);
        if (lower_final_ == LowerOrderFinal::Below10 && steps < detail::kLowerOrderFinalBelow)
          q = std::min(q, p + 1);
        const double sig_s = s.sigma / s.alpha;
        const double tau = sig_s >= tau_min_ && sig_s <= tau_max_ ? tau_ : 0.0;
        const double h = t.lambda - s.lambda, c = 1.0 + tau * tau;
        const double bx = t.sigma / s.sigma * std::exp(-tau * tau * h);
        const bool noisy = tau > 0.0 && s_noise_ > 0.0;
        at::Tensor& z = ctx.buffer("noise", x);
        if (noisy) ctx.standard_normal_into(z, s.t, t.t);
        const double cz =
            noisy ? s_noise_ * t.sigma * std::sqrt(-std::expm1(-2.0 * tau * tau * h)) : 0.0;
        std::array<double, 5> nodes{};
        for (int j = 0; j < p; ++j) nodes[size_t(j)] = hist.node(j);
        const auto wp = sa_solver_weights(nodes, p, s.lambda, t.lambda, c);
        at::Tensor& x_pred = q >= 1 ? ctx.buffer("predicted", x) : next;
        combine(x_pred, bx, x, t.alpha, wp, p, hist, 0, {}, cz, z);
        if (q >= 1) {
          m_t = hist.fresh(x);
          detail::predict_into(ctx.predictor, Param::X0, x_pred, t.t, m_t);
          std::array<double, 5> cn{};
          cn[0] = t.lambda;
          for (int j = 1; j < q; ++j) cn[size_t(j)] = hist.node(j - 1);
          const auto wc = sa_solver_weights(cn, q, s.lambda, t.lambda, c);
          combine(next, bx, x, t.alpha, wc, q, hist, 1, m_t, cz, z);
        }
      }
      ctx.step_done(i, steps, s.t, t.t, x, next, last);
      x = next;
      if (last) break;
      if (!m_t.defined()) {
        m_t = hist.fresh(x);
        detail::predict_into(ctx.predictor, Param::X0, x, t.t, m_t);
      }
      hist.push(m_t, t.lambda);
      s = t;
    }
    return x;
  }

 private:
  // out = bx x + alpha_t sum_j w_j D_j + cz z, the D_j being `fresh` (when shift = 1) followed by
  // hist[0 .. n - 1 - shift].
  static void combine(at::Tensor& out, double bx, const at::Tensor& x, double alpha,
                      const std::array<double, 5>& w, int n,
                      const detail::PredictionHistory<4>& hist, int shift, const at::Tensor& fresh,
                      double cz, const at::Tensor& z) {
    auto term = [&](int j) -> const at::Tensor& {
      if (shift == 1 && j == 0) return fresh;
      return hist[j - shift];
    };
    auto c = [&](int j) { return j < n ? alpha * w[size_t(j)] : 0.0; };
    auto t = [&](int j) -> const at::Tensor& { return j < n ? term(j) : x; };
    detail::lincomb(
        out,
        {{bx, x}, {c(0), t(0)}, {c(1), t(1)}, {c(2), t(2)}, {c(3), t(3)}, {c(4), t(4)}, {cz, z}});
  }

  int p_, q_;
  double tau_, tau_min_, tau_max_, s_noise_;
  LowerOrderFinal lower_final_;
};
}  // namespace

std::unique_ptr<Sampler> make_sa_solver(const SamplerOptions& o) {
  return std::make_unique<SASolver>(o);
}

}  // namespace sdekit
