// UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
// Diffusion Models"), data-prediction form, multistep, in lambda. For a step from s to t with
// h = lambda_t - lambda_s, hh = -h, and earlier data predictions m_j at lambda_j
// (r_j = (lambda_j - lambda_s)/h, D_j = (m_j - m_s)/r_j):
//   x_t' = (sigma_t/sigma_s) x_s - alpha_t expm1(hh) m_s
//   UniP-p (predictor): x_t = x_t' - alpha_t B(h) sum_j rho^p_j D_j, rho^p from R_{p-1} rho =
//   g_{p-1} UniC-p (corrector): m_t = x0(x_t, t); x_t^c = x_t' - alpha_t B(h) (sum_j rho^c_j D_j
//                       + rho^c_p (m_t - m_s)), rho^c from R_p rho = g_p,
// where R_p has rows (r_1^k, ..., r_{p-1}^k, 1) for k = 0..p-1, g_k = k! phi_{k+1}(hh) hh / B(h)
// with phi_1(z) = expm1(z)/z, phi_{k+1}(z) = (phi_k(z) - 1/k!)/z, and B(h) = hh (bh1) or
// expm1(hh) (bh2). As in the paper's reference code, order-2 prediction uses rho = 1/2 and
// order-1 correction rho = 1/2. The corrector's model call m_t (made at the predicted x_t) is the
// next step's m_s, so UniPC costs 1 NFE per step (plus 1 at the start, minus the last step,
// which is not corrected): NFE = steps. UniP-p + UniC has order p + 1 (the paper's Theorem 3.3);
// the first steps warm up with orders 1, 2, ... and grids of fewer than 10 steps lower the order
// of their final steps, as for DPM-Solver++ multistep. A step ending where lambda is infinite
// (sigma = 0 or alpha = 0) is the order-1 limit. Works in both time directions.
#include <Eigen/Dense>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "solvers/detail/exp_integrator.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
using detail::LambdaPoint;

constexpr int kLowerOrderFinalBelow = 10;

class UniPC final : public Sampler {
 public:
  UniPC(int order, UniPCVariant variant) : order_(order), variant_(variant) {
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
    at::Tensor m_s = ctx.predictor.x0(x, s.t);
    std::vector<at::Tensor> hist;  // earlier data predictions, newest first
    std::vector<double> hist_lam;
    for (int i = 0; i < steps; ++i) {
      const LambdaPoint t = LambdaPoint::at(k, ctx.times[i + 1]);
      const bool last = i + 1 == steps;
      int order = std::min(order_, i + 1);
      if (steps < kLowerOrderFinalBelow) order = std::min(order, steps - i);
      at::Tensor next, m_t;
      if (t.singular()) {
        next = detail::dpm1_x0(x, m_s, s, t);
      } else {
        next = update(ctx, x, m_s, s, t, order, hist, hist_lam, !last, m_t);
      }
      ctx.step_done(i, steps, s.t, t.t, x, next, last);
      x = std::move(next);
      if (last) break;
      if (!m_t.defined()) m_t = ctx.predictor.x0(x, t.t);
      hist.insert(hist.begin(), m_s);
      hist_lam.insert(hist_lam.begin(), s.lambda);
      if (hist.size() > 2) {
        hist.pop_back();
        hist_lam.pop_back();
      }
      m_s = m_t;
      s = t;
    }
    return x;
  }

 private:
  at::Tensor update(const RunContext& ctx, const at::Tensor& x, const at::Tensor& m_s,
                    const LambdaPoint& s, const LambdaPoint& t, int order,
                    const std::vector<at::Tensor>& hist, const std::vector<double>& hist_lam,
                    bool correct, at::Tensor& m_t) const {
    const double h = t.lambda - s.lambda, hh = -h;
    const double h_phi_1 = std::expm1(hh);
    const double B = variant_ == UniPCVariant::Bh1 ? hh : h_phi_1;
    const int p = order;
    // r_j and D_j for the p - 1 earlier points; rks has a trailing 1 for the new point.
    std::vector<double> rks;
    std::vector<at::Tensor> D;
    for (int j = 0; j < p - 1; ++j) {
      const double r = (hist_lam[static_cast<size_t>(j)] - s.lambda) / h;
      rks.push_back(r);
      D.push_back((hist[static_cast<size_t>(j)] - m_s) / r);
    }
    rks.push_back(1.0);
    Eigen::MatrixXd R(p, p);
    Eigen::VectorXd g(p);
    double h_phi_k = h_phi_1 / hh - 1.0, fact = 1.0;
    for (int row = 0; row < p; ++row) {
      for (int c = 0; c < p; ++c) R(row, c) = std::pow(rks[static_cast<size_t>(c)], row);
      g(row) = h_phi_k * fact / B;
      fact *= row + 2;
      h_phi_k = h_phi_k / hh - 1.0 / fact;
    }
    const at::Tensor base = at::mul(x, t.sigma / s.sigma).sub_(m_s, t.alpha * h_phi_1);
    at::Tensor x_t = base;
    if (p >= 2) {
      Eigen::VectorXd rho_p(p - 1);
      if (p == 2)
        rho_p(0) = 0.5;
      else
        rho_p = R.topLeftCorner(p - 1, p - 1).partialPivLu().solve(g.head(p - 1));
      x_t = base.clone();
      for (int j = 0; j < p - 1; ++j) x_t.sub_(D[static_cast<size_t>(j)], t.alpha * B * rho_p(j));
    }
    if (!correct) return x_t;
    m_t = ctx.predictor.x0(x_t, t.t);
    Eigen::VectorXd rho_c(p);
    if (p == 1)
      rho_c(0) = 0.5;
    else
      rho_c = R.partialPivLu().solve(g);
    at::Tensor out = base.clone();
    for (int j = 0; j < p - 1; ++j) out.sub_(D[static_cast<size_t>(j)], t.alpha * B * rho_c(j));
    return out.sub_(m_t - m_s, t.alpha * B * rho_c(p - 1));
  }

  int order_;
  UniPCVariant variant_;
  std::string name_;
};
}  // namespace

std::unique_ptr<Sampler> make_unipc(int order, const SamplerOptions& o) {
  return std::make_unique<UniPC>(order, o.unipc_variant);
}

}  // namespace sdekit
