// DPM-Solver with noise prediction (Lu et al. 2022, "DPM-Solver: A Fast ODE Solver for Diffusion
// Probabilistic Model Sampling in Around 10 Steps"), singlestep, exact in the linear part. For a
// step from s to t, h = lambda_t - lambda_s (docs/theory.md section 4.5):
//  order 1 (1 NFE):  x_t = (alpha_t/alpha_s) x_s - sigma_t expm1(h) eps_s          (= DDIM eta 0)
//  order 2 (2 NFE, r1 = 1/2): s1 = t(lambda_s + r1 h),
//     u  = (alpha_s1/alpha_s) x_s - sigma_s1 expm1(r1 h) eps_s
//     x_t = (alpha_t/alpha_s) x_s - sigma_t expm1(h) eps_s
//           - sigma_t/(2 r1) expm1(h) (eps(u, s1) - eps_s)
//  order 3 (3 NFE, r1 = 1/3, r2 = 2/3; the paper's Algorithm 2):
//     u1 = (alpha_s1/alpha_s) x_s - sigma_s1 expm1(r1 h) eps_s,  D1 = eps(u1, s1) - eps_s
//     u2 = (alpha_s2/alpha_s) x_s - sigma_s2 expm1(r2 h) eps_s
//          - (sigma_s2 r2/r1) (expm1(r2 h)/(r2 h) - 1) D1,         D2 = eps(u2, s2) - eps_s
//     x_t = (alpha_t/alpha_s) x_s - sigma_t expm1(h) eps_s - (sigma_t/r2) (expm1(h)/h - 1) D2
// Global order k for DPM-Solver-k. DPM-Solver-fast (the paper's section 3.4) spends an exact NFE
// budget N with order 3: K = floor(N/3) + 1 steps of orders 3,...,3 followed by (2, 1) when
// N % 3 = 0, by 1 when N % 3 = 1, by 2 when N % 3 = 2 (order 2: K = ceil(N/2), orders 2,...,2
// then 1 if N is odd). The paper pairs it with a grid uniform in lambda (--grid uniform-lambda).
// A step that ends where sigma = 0 or alpha = 0 (lambda infinite) is taken as the order-1 limit.
// Works in both time directions (sampling and encoding). Steps write into run buffers and
// allocate nothing in steady state.
#include <cmath>
#include <stdexcept>
#include <vector>

#include "solvers/detail/exp_integrator.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
using detail::LambdaPoint;

// Work buffers of a step (run slots): eps_s, the intermediate points and the eps differences.
enum Slot { kEps = RunContext::kFirstScratchSlot, kU1, kD1, kU2, kD2 };

void dpm_step(const StepContext& ctx, const at::Tensor& x, double s_t, double t_t, int order,
              at::Tensor& out) {
  const NoiseSchedule& k = ctx.kernel();
  const Predictor& pred = ctx.predictor();
  const LambdaPoint s = LambdaPoint::at(k, s_t), t = LambdaPoint::at(k, t_t);
  at::Tensor hold;
  const at::Tensor& eps_s =
      detail::predict_ref(pred, Param::Eps, x, s_t, ctx.run.buffer(kEps, x), hold);
  if (order == 1 || t.singular()) return detail::dpm1_eps(x, eps_s, s, t, out);
  const double h = t.lambda - s.lambda;
  const double phi_t = t.sigma * std::expm1(h), r = t.alpha / s.alpha;
  at::Tensor& u1 = ctx.run.buffer(kU1, x);
  at::Tensor& d1 = ctx.run.buffer(kD1, x);
  if (order == 2) {
    const double r1 = 0.5;
    const LambdaPoint s1 = LambdaPoint::at(k, k.t_of_lambda(s.lambda + r1 * h));
    detail::lincomb(u1, {{s1.alpha / s.alpha, x}, {-s1.sigma * std::expm1(r1 * h), eps_s}});
    const Predictor::Linear e1 = pred.linear(Param::Eps, u1, s1.t);
    detail::lincomb(d1, {{e1.cp, e1.raw}, {e1.cx, u1}, {-1.0, eps_s}});
    return detail::lincomb(out, {{r, x}, {-phi_t, eps_s}, {-phi_t / (2.0 * r1), d1}});
  }
  const double r1 = 1.0 / 3.0, r2 = 2.0 / 3.0;
  const LambdaPoint s1 = LambdaPoint::at(k, k.t_of_lambda(s.lambda + r1 * h));
  const LambdaPoint s2 = LambdaPoint::at(k, k.t_of_lambda(s.lambda + r2 * h));
  detail::lincomb(u1, {{s1.alpha / s.alpha, x}, {-s1.sigma * std::expm1(r1 * h), eps_s}});
  const Predictor::Linear e1 = pred.linear(Param::Eps, u1, s1.t);
  detail::lincomb(d1, {{e1.cp, e1.raw}, {e1.cx, u1}, {-1.0, eps_s}});
  const double e2 = std::expm1(r2 * h);
  at::Tensor& u2 = ctx.run.buffer(kU2, x);
  at::Tensor& d2 = ctx.run.buffer(kD2, x);
  detail::lincomb(u2, {{s2.alpha / s.alpha, x},
                       {-s2.sigma * e2, eps_s},
                       {-s2.sigma * r2 / r1 * (e2 / (r2 * h) - 1.0), d1}});
  const Predictor::Linear e2p = pred.linear(Param::Eps, u2, s2.t);
  detail::lincomb(d2, {{e2p.cp, e2p.raw}, {e2p.cx, u2}, {-1.0, eps_s}});
  detail::lincomb(out, {{r, x}, {-phi_t, eps_s}, {-t.sigma / r2 * (std::expm1(h) / h - 1.0), d2}});
}

class DPMSolver final : public FixedStepSampler {
 public:
  explicit DPMSolver(int order) : order_(order) {
    if (order < 1 || order > 3)
      throw std::invalid_argument("dpm-solver: order must be 1, 2 or 3, got " +
                                  std::to_string(order));
    name_ = "dpm-solver-" + std::to_string(order);
  }
  std::string_view name() const override { return name_; }
  double order() const override { return order_; }
  bool stochastic() const override { return false; }
  int nfe_per_step() const override { return order_; }
  bool needs_kernel() const override { return true; }

 protected:
  void step_into(const StepContext& ctx, const at::Tensor& x, double s, double t,
                 at::Tensor& out) const override {
    dpm_step(ctx, x, s, t, order_, out);
  }

 private:
  int order_;
  std::string name_;
};

/// Orders of DPM-Solver-fast for an NFE budget (see the header comment).
std::vector<int> fast_orders(int nfe, int order) {
  std::vector<int> o;
  if (order == 3) {
    const int K = nfe / 3 + 1;
    if (nfe % 3 == 0) {
      o.assign(static_cast<size_t>(K - 2), 3);
      o.push_back(2);
      o.push_back(1);
    } else {
      o.assign(static_cast<size_t>(K - 1), 3);
      o.push_back(nfe % 3);
    }
  } else {
    o.assign(static_cast<size_t>(nfe / 2), 2);
    if (nfe % 2) o.push_back(1);
  }
  return o;
}

class DPMSolverFast final : public Sampler {
 public:
  explicit DPMSolverFast(int nfe) : nfe_(nfe) {
    if (nfe != 0 && nfe < 3)
      throw std::invalid_argument("dpm-solver-fast: the NFE budget must be >= 3, got " +
                                  std::to_string(nfe));
  }
  std::string_view name() const override { return "dpm-solver-fast"; }
  double order() const override { return 3.0; }
  bool stochastic() const override { return false; }
  int nfe_per_step() const override { return 3; }
  bool needs_kernel() const override { return true; }
  int steps_for_nfe(int nfe) const override {
    if (nfe < 3)
      throw std::invalid_argument("dpm-solver-fast: an NFE budget of " + std::to_string(nfe) +
                                  " is below 3");
    return static_cast<int>(fast_orders(nfe, 3).size());
  }

 protected:
  at::Tensor integrate(const RunContext& ctx, const at::Tensor& x_init) const override {
    // Without a budget, a grid of K steps spends the largest budget with K steps: 3K - 1.
    const int budget = nfe_ > 0 ? nfe_ : 3 * ctx.steps() - 1;
    const std::vector<int> orders = fast_orders(budget, 3);
    if (static_cast<int>(orders.size()) != ctx.steps())
      throw std::invalid_argument("dpm-solver-fast: an NFE budget of " + std::to_string(budget) +
                                  " takes " + std::to_string(orders.size()) +
                                  " steps, the grid has " + std::to_string(ctx.steps()));
    at::Tensor x = x_init;
    for (int i = 0; i < ctx.steps(); ++i) {
      const StepContext sc{ctx, i, ctx.steps()};
      at::Tensor& out = ctx.buffer(i % 2, x);
      dpm_step(sc, x, ctx.times[i], ctx.times[i + 1], orders[static_cast<size_t>(i)], out);
      ctx.step_done(i, ctx.steps(), ctx.times[i], ctx.times[i + 1], x, out, i + 1 == ctx.steps());
      x = out;
    }
    return x;
  }

 private:
  int nfe_;
};
}  // namespace

std::unique_ptr<Sampler> make_dpm_solver(int order, const SamplerOptions&) {
  return std::make_unique<DPMSolver>(order);
}

std::unique_ptr<Sampler> make_dpm_solver_fast(const SamplerOptions& o) {
  return std::make_unique<DPMSolverFast>(o.nfe_budget);
}

}  // namespace sdekit
