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
// Global order k for DPM-Solver-k. Given an NFE budget N (SamplerOptions::nfe_budget, --nfe),
// DPM-Solver-2 spends it exactly with the official order schedule: ceil(N/2) steps of order 2,
// the last of order 1 when N is odd; DPM-Solver-3 takes floor(N/3) steps of order 3 (the command
// notes the unspent rest; DPM-Solver-fast spends any budget exactly). DPM-Solver-fast (the paper's section 3.4) spends an exact NFE
// budget N with order 3: K = floor(N/3) + 1 steps of orders 3,...,3 followed by (2, 1) when
// N % 3 = 0, by 1 when N % 3 = 1, by 2 when N % 3 = 2. The paper pairs it with a grid uniform in
// lambda (--grid uniform-lambda).
// A step that ends where sigma = 0 or alpha = 0 (lambda infinite) is taken as the order-1 limit.
// Works in both time directions (sampling and encoding). Steps write into run buffers and
// allocate nothing in steady state.
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "solvers/detail/dpm_stages.hpp"
#include "solvers/detail/exp_integrator.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
using detail::LambdaPoint;

/// One step of order 1, 2 or 3 with the intermediate points at lambda_s + r1 h (and r2 h); by
/// default DPM-Solver's fixed ratios 1/2 (order 2) and 1/3, 2/3 (order 3).
void dpm_step(const RunContext& run, const at::Tensor& x, double s_t, double t_t, int order,
              at::Tensor& out, double r1 = 0.0, double r2 = 0.0) {
  const NoiseSchedule& k = *run.kernel;
  const LambdaPoint s = LambdaPoint::at(k, s_t), t = LambdaPoint::at(k, t_t);
  at::Tensor hold;
  const at::Tensor& eps_s = detail::dpm_eps(run, x, s_t, hold);
  if (order == 1 || t.singular()) return detail::dpm1_eps(x, eps_s, s, t, out);
  const double h = t.lambda - s.lambda;
  if (order == 2) {
    if (r1 == 0.0) r1 = 0.5;
    const at::Tensor& d1 = detail::dpm_stage1(run, x, eps_s, s, h, r1);
    return detail::dpm_update2(x, eps_s, d1, s, t, r1, out);
  }
  if (r1 == 0.0) r1 = 1.0 / 3.0;
  if (r2 == 0.0) r2 = 2.0 / 3.0;
  const at::Tensor& d1 = detail::dpm_stage1(run, x, eps_s, s, h, r1);
  const at::Tensor& d2 = detail::dpm_stage2(run, x, eps_s, d1, s, h, r1, r2);
  detail::dpm_update3(x, eps_s, d2, s, t, r2, out);
}

class DPMSolver final : public FixedStepSampler {
 public:
  DPMSolver(int order, int nfe_budget)
      : order_(order), nfe_(nfe_budget), name_("dpm-solver-" + std::to_string(order)) {}
  std::string_view name() const override { return name_; }
  double order() const override { return order_; }
  bool stochastic() const override { return false; }
  int nfe_per_step() const override { return order_; }
  bool needs_kernel() const override { return true; }
  /// Order 2 spends its own budget exactly: ceil(N / 2) steps, the last of order 1 when N is odd.
  int steps_for_nfe(int nfe) const override {
    if (order_ == 2 && nfe == nfe_ && nfe >= 1) return (nfe + 1) / 2;
    return FixedStepSampler::steps_for_nfe(nfe);
  }

 protected:
  void step_into(const StepContext& ctx, const at::Tensor& x, double s, double t,
                 at::Tensor& out) const override {
    // The official order schedule for an odd budget: 2, ..., 2, 1.
    const bool odd_budget =
        order_ == 2 && nfe_ % 2 == 1 && ctx.steps == (nfe_ + 1) / 2 && ctx.last();
    dpm_step(ctx.run, x, s, t, odd_budget ? 1 : order_, out);
  }

 private:
  int order_;
  int nfe_;
  std::string name_;
};

/// Steps of DPM-Solver-fast for an NFE budget N >= 3: K = floor(N/3) + 1.
int fast_steps(int nfe) {
  return nfe / 3 + 1;
}

/// The order of step i of DPM-Solver-fast for an NFE budget N (see the header comment): 3 up to
/// the last step(s), then (2, 1) when N % 3 = 0, else N % 3.
int fast_order(int nfe, int i) {
  const int K = fast_steps(nfe);
  if (nfe % 3 == 0) return i < K - 2 ? 3 : i == K - 2 ? 2 : 1;
  return i < K - 1 ? 3 : nfe % 3;
}

class DPMSolverFast final : public FixedStepSampler {
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
    return fast_steps(nfe);
  }

 protected:
  void step_into(const StepContext& ctx, const at::Tensor& x, double s, double t,
                 at::Tensor& out) const override {
    // Without a budget, a grid of K steps spends the largest budget with K steps: 3K - 1.
    const int budget = nfe_ > 0 ? nfe_ : 3 * ctx.steps - 1;
    if (ctx.index == 0 && fast_steps(budget) != ctx.steps)
      throw std::invalid_argument("dpm-solver-fast: an NFE budget of " + std::to_string(budget) +
                                  " takes " + std::to_string(fast_steps(budget)) +
                                  " steps, the grid has " + std::to_string(ctx.steps));
    dpm_step(ctx.run, x, s, t, fast_order(budget, ctx.index), out);
  }

 private:
  int nfe_;
};
/// The official order schedule of a budget of N model calls for singlestep order 1, 2 or 3:
/// 1 (N times); 2, ..., 2 with a final 1 for odd N; order 3 DPM-Solver-fast's (see fast_order,
/// which also covers N < 3: [1] for N = 1, [2] for N = 2).
std::vector<int> official_orders(int order, int N) {
  if (order == 1) return std::vector<int>(static_cast<size_t>(N), 1);
  if (order == 2) {
    std::vector<int> o(static_cast<size_t>(N / 2), 2);
    if (N % 2 == 1) o.push_back(1);
    return o;
  }
  std::vector<int> o;
  for (int i = 0; i < fast_steps(N); ++i) o.push_back(fast_order(N, i));
  return o;
}

/// DPM-Solver-1/2/3 and -fast under the official singlestep rule (docs/theory.md section 4.5):
/// a grid of N intervals (N the NFE budget) is walked in steps of the official orders, a step of
/// order k spanning k intervals, its intermediate points the inner grid nodes:
/// r_j = (lambda(t_{i+j}) - lambda(t_i)) / h. On a uniform-t or quadratic grid those are the
/// points the reference places uniformly (in t, in sqrt t) inside each step; on a uniform-lambda
/// grid the grid maker places them at the fixed ratios (GridOptions::groups).
class DPMSolverOfficial final : public Sampler {
 public:
  DPMSolverOfficial(int order, std::string name) : order_(order), name_(std::move(name)) {}
  std::string_view name() const override { return name_; }
  double order() const override { return order_; }
  bool stochastic() const override { return false; }
  int nfe_per_step() const override { return order_; }
  bool needs_kernel() const override { return true; }
  /// Every budget is spent exactly: one model call per grid interval.
  int steps_for_nfe(int nfe) const override {
    if (nfe < 1)
      throw std::invalid_argument(name_ + ": an NFE budget of " + std::to_string(nfe) +
                                  " buys no step");
    return nfe;
  }
  std::vector<int> grid_groups(int intervals) const override {
    return official_orders(order_, intervals);
  }

 protected:
  at::Tensor integrate(const RunContext& ctx, const at::Tensor& x_init) const override {
    const NoiseSchedule& k = *ctx.kernel;
    const std::vector<int> orders = official_orders(order_, ctx.steps());
    const int K = static_cast<int>(orders.size());
    at::Tensor x = x_init;
    size_t i = 0;  // grid node where the step starts
    for (int j = 0; j < K; ++j) {
      const int o = orders[static_cast<size_t>(j)];
      const double s = ctx.times[i], t = ctx.times[i + static_cast<size_t>(o)];
      const double ls = k.lambda(s), h = k.lambda(t) - ls;
      const double r1 = o >= 2 ? (k.lambda(ctx.times[i + 1]) - ls) / h : 0.0;
      const double r2 = o >= 3 ? (k.lambda(ctx.times[i + 2]) - ls) / h : 0.0;
      at::Tensor& out = ctx.state(j, x);
      dpm_step(ctx, x, s, t, o, out, r1, r2);
      ctx.step_done(j, K, s, t, x, out, j + 1 == K);
      x = out;
      i += static_cast<size_t>(o);
    }
    return x;
  }

 private:
  int order_;
  std::string name_;
};
}  // namespace

std::unique_ptr<Sampler> make_dpm_solver(int order, const SamplerOptions& o) {
  if (order < 1 || order > 3)
    throw std::invalid_argument("dpm-solver: order must be 1, 2 or 3, got " +
                                std::to_string(order));
  if (o.singlestep_official)
    return std::make_unique<DPMSolverOfficial>(order, "dpm-solver-" + std::to_string(order));
  return std::make_unique<DPMSolver>(order, o.nfe_budget);
}

std::unique_ptr<Sampler> make_dpm_solver_fast(const SamplerOptions& o) {
  if (o.singlestep_official) return std::make_unique<DPMSolverOfficial>(3, "dpm-solver-fast");
  return std::make_unique<DPMSolverFast>(o.nfe_budget);
}

}  // namespace sdekit
