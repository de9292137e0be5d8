// UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
// Diffusion Models"), data-prediction form, multistep, in lambda. For a step from s to t with
// h = lambda_t - lambda_s, hh = -h, and earlier data predictions m_j at lambda_j
// (r_j = (lambda_j - lambda_s)/h, D_j = (m_j - m_s)/r_j):
//   x_t' = (sigma_t/sigma_s) x_s - alpha_t expm1(hh) m_s
//   UniP-p (predictor): x_t = x_t' - alpha_t B(h) sum_j rho^p_j D_j,
//                       rho^p from R_{p-1} rho = g_{p-1}
//   UniC-p (corrector): m_t = x0(x_t, t);
//                       x_t^c = x_t' - alpha_t B(h) (sum_j rho^c_j D_j + rho^c_p (m_t - m_s)),
//                       rho^c from R_p rho = g_p,
// where R_p has rows (r_1^k, ..., r_{p-1}^k, 1) for k = 0..p-1, g_k = k! phi_{k+1}(hh) hh / B(h)
// with phi_1(z) = expm1(z)/z, phi_{k+1}(z) = (phi_k(z) - 1/k!)/z, and B(h) = hh (bh1) or
// expm1(hh) (bh2). As in the paper's reference code, order-2 prediction uses rho = 1/2 and
// order-1 correction rho = 1/2. The corrector's model call m_t (made at the predicted x_t) is the
// next step's m_s, so UniPC costs 1 NFE per step (plus 1 at the start, minus the last step,
// which is not corrected): NFE = steps. UniP-p + UniC has order p + 1 (the paper's Theorem 3.3);
// the first steps warm up with orders 1, 2, ... and grids of fewer than 10 steps lower the order
// of their final steps, as for DPM-Solver++ multistep. A step ending where lambda is infinite
// (sigma = 0 or alpha = 0) is the order-1 limit. Works in both time directions. Steps write into
// run buffers and allocate nothing in steady state (besides the tiny Eigen solve on the host).
#include <Eigen/Dense>
#include <array>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "solvers/detail/exp_integrator.hpp"
#include "solvers/detail/multistep.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
using detail::LambdaPoint;

class UniPC final : public Sampler {
 public:
  UniPC(int order, UniPCVariant variant, LowerOrderFinal lower_final)
      : order_(order), variant_(variant), lower_final_(lower_final) {
    if (order < 1 || order > 3)
      throw std::invalid_argument("unipc: order must be 1, 2 or 3, got " + std::to_string(order));
    name_ = "unipc-" + std::to_string(order);
  }
  std::string_view name() const override { return name_; }
  double order() const override { return order_ + 1; }
  bool stochastic() const override { return false; }
  int nfe_per_step() const override { return 1; }
  bool needs_kernel() const override { return true; }

 protected:
  at::Tensor integrate(const RunContext& ctx, const at::Tensor& x_init) const override {
    const NoiseSchedule& k = *ctx.kernel;
    const int steps = ctx.steps();
    at::Tensor x = x_init;
    LambdaPoint s = LambdaPoint::at(k, ctx.times[0]);
    // hist[0] is m_s, the data prediction at s; hist[1], hist[2] the earlier ones.
    detail::PredictionHistory<3> hist(ctx, "x0");
    at::Tensor& m_first = hist.fresh(x);
    detail::predict_into(ctx.predictor, Param::X0, x, s.t, m_first);
    hist.push(m_first, s.lambda);
    for (int i = 0; i < steps; ++i) {
      const LambdaPoint t = LambdaPoint::at(k, ctx.times[i + 1]);
      const bool last = i + 1 == steps;
      const int order =
          std::min(detail::multistep_order(order_, i, steps, lower_final_), hist.size());
      at::Tensor& next = ctx.state(i, x);
      at::Tensor m_t;
      if (t.singular()) {
        detail::dpm1_x0(x, hist[0], s, t, next);
      } else {
        if (!last) m_t = hist.fresh(x);
        update(ctx, x, s, t, order, hist, m_t, next);
      }
      ctx.step_done(i, steps, s.t, t.t, x, next, last);
      x = next;
      if (last) break;
      if (!m_t.defined()) {  // the step ended at an infinite lambda: ask the model at the new point
        m_t = hist.fresh(x);
        detail::predict_into(ctx.predictor, Param::X0, x, t.t, m_t);
      }
      hist.push(m_t, t.lambda);
      s = t;
    }
    return x;
  }

 private:
  // One UniP-p step (and UniC-p when m_t is given: m_t receives x0 at the predicted point and
  // `out` the corrected state).
  void update(const RunContext& ctx, const at::Tensor& x, const LambdaPoint& s,
              const LambdaPoint& t, int order, const detail::PredictionHistory<3>& hist,
              at::Tensor& m_t, at::Tensor& out) const {
    const at::Tensor& m_s = hist[0];
    const double h = t.lambda - s.lambda, hh = -h;
    const double h_phi_1 = std::expm1(hh);
    const double B = variant_ == UniPCVariant::Bh1 ? hh : h_phi_1;
    const int p = order;
    // r_j for the p - 1 earlier points (rks ends with 1). D_j = (m_j - m_s) / r_j is never formed:
    // its coefficients are folded into the combinations of x, m_s, m_0, m_1 (and m_t) below.
    std::array<double, 3> rks{};
    for (int j = 0; j < p - 1; ++j) rks[static_cast<size_t>(j)] = (hist.node(j + 1) - s.lambda) / h;
    rks[static_cast<size_t>(p - 1)] = 1.0;
    Eigen::MatrixXd R(p, p);
    Eigen::VectorXd g(p);
    double h_phi_k = h_phi_1 / hh - 1.0, fact = 1.0;
    for (int row = 0; row < p; ++row) {
      for (int c = 0; c < p; ++c) R(row, c) = std::pow(rks[static_cast<size_t>(c)], row);
      g(row) = h_phi_k * fact / B;
      fact *= row + 2;
      h_phi_k = h_phi_k / hh - 1.0 / fact;
    }
    const double aB = t.alpha * B;
    const double bx = t.sigma / s.sigma, bm = -t.alpha * h_phi_1;  // x_t' = bx x + bm m_s
    const at::Tensor& h0 = p >= 2 ? hist[1] : x;
    const at::Tensor& h1 = p >= 3 ? hist[2] : x;
    // sum_j c_j D_j = sum_j (c_j / r_j) m_j - (sum_j c_j / r_j) m_s.
    auto folded = [&](const Eigen::VectorXd& rho, std::array<double, 2>& cm) {
      cm = {0.0, 0.0};
      double cs = 0.0;
      for (int j = 0; j < p - 1; ++j) {
        cm[static_cast<size_t>(j)] = -aB * rho(j) / rks[static_cast<size_t>(j)];
        cs -= cm[static_cast<size_t>(j)];
      }
      return cs;
    };
    Eigen::VectorXd rho_p = Eigen::VectorXd::Zero(2);
    if (p == 2) rho_p(0) = 0.5;
    if (p == 3) rho_p.head(2) = R.topLeftCorner(2, 2).partialPivLu().solve(g.head(2));
    std::array<double, 2> cp{};
    const double cps = folded(rho_p, cp);
    at::Tensor& x_t = m_t.defined() ? ctx.buffer("predicted", x) : out;
    detail::lincomb(x_t, {{bx, x}, {bm + cps, m_s}, {cp[0], h0}, {cp[1], h1}});
    if (!m_t.defined()) return;  // UniP only
    detail::predict_into(ctx.predictor, Param::X0, x_t, t.t, m_t);
    Eigen::VectorXd rho_c(p);
    if (p == 1)
      rho_c(0) = 0.5;
    else
      rho_c = R.partialPivLu().solve(g);
    std::array<double, 2> cc{};
    const double ccs = folded(rho_c, cc);
    const double et = -aB * rho_c(p - 1);
    detail::lincomb(out, {{bx, x}, {bm + ccs - et, m_s}, {cc[0], h0}, {cc[1], h1}, {et, m_t}});
  }

  int order_;
  UniPCVariant variant_;
  LowerOrderFinal lower_final_;
  std::string name_;
};
}  // namespace

std::unique_ptr<Sampler> make_unipc(int order, const SamplerOptions& o) {
  return std::make_unique<UniPC>(order, o.unipc_variant, o.lower_order_final);
}

}  // namespace sdekit
