// Adaptive DPM-Solver-12 and -23 (Lu et al. 2022, section 3.3 and Algorithm 4): each attempted
// step from s by h in lambda computes a lower- and a higher-order DPM-Solver (noise prediction)
// solution that share model calls, and controls the local error between them:
//   DPM-Solver-12: lower = DPM-Solver-1, higher = DPM-Solver-2 (r1 = 1/2); 2 NFE per attempt.
//   DPM-Solver-23: lower = DPM-Solver-2 (r1 = 1/3), higher = DPM-Solver-3 (r1 = 1/3, r2 = 2/3);
//                  3 NFE per attempt.
//   delta = max(atol, rtol max(|x_lower|, |x_prev|)),  E = max over rows of RMS((x_high -
//   x_low)/delta) accept if E <= 1 (x <- x_high, x_prev <- x_low); then h <- min(0.9 h E^{-1/k},
//   lambda_end - lambda_s)
// with k the higher order, starting from h = 0.05 (the paper's defaults theta = 0.9, h_init =
// 0.05). The model call at s is kept across rejected attempts. E is reduced on the host: one
// device sync per attempt. The accepted solution has order k (2 or 3) in the tolerance's sense.
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>

#include "solvers/detail/exp_integrator.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
using detail::LambdaPoint;

class AdaptiveDPMSolver final : public Sampler {
 public:
  AdaptiveDPMSolver(int order, const SamplerOptions& o)
      : order_(order), rtol_(o.rtol), atol_(o.atol), max_steps_(o.max_steps) {
    name_ = order == 2 ? "dpm-solver-12" : "dpm-solver-23";
    if (!(rtol_ > 0))
      throw std::invalid_argument(name_ + ": rtol must be > 0, got " + std::to_string(rtol_));
    if (!(atol_ > 0))
      throw std::invalid_argument(name_ + ": atol must be > 0, got " + std::to_string(atol_));
    if (max_steps_ < 1) throw std::invalid_argument(name_ + ": max_steps must be >= 1");
  }
  std::string_view name() const override { return name_; }
  double order() const override { return order_; }
  bool stochastic() const override { return false; }
  int nfe_per_step() const override { return order_; }
  bool needs_kernel() const override { return true; }
  bool adaptive() const override { return true; }

 protected:
  at::Tensor integrate(const RunContext& ctx, const at::Tensor& x_init) const override {
    const NoiseSchedule& k = *ctx.kernel;
    const double t_end = ctx.times.back();
    const double lam_end = k.lambda(t_end);
    LambdaPoint s = LambdaPoint::at(k, ctx.times.front());
    const double dir = lam_end > s.lambda ? 1.0 : -1.0;
    double h = 0.05 * dir;
    at::Tensor x = x_init, x_prev = x_init, eps_s;
    int accepted = 0;
    for (int attempt = 0;; ++attempt) {
      if (attempt >= max_steps_) {
        std::ostringstream os;
        os << name_ << ": " << max_steps_ << " attempted steps did not reach t = " << t_end
           << " (stopped at t = " << s.t << "); raise max_steps or the tolerances";
        throw std::runtime_error(os.str());
      }
      const bool to_end = dir * (s.lambda + h - lam_end) >= 0.0;
      if (to_end) h = lam_end - s.lambda;
      const LambdaPoint t = LambdaPoint::at(k, to_end ? t_end : k.t_of_lambda(s.lambda + h));
      if (!eps_s.defined()) eps_s = ctx.predictor.eps(x, s.t);
      at::Tensor lo, hi;
      step_pair(ctx, x, eps_s, s, t, lo, hi);
      const at::Tensor delta =
          at::maximum(at::abs(lo), at::abs(x_prev)).mul_(rtol_).clamp_min_(atol_);
      const at::Tensor ratio = (hi - lo).div_(delta);
      const double E = ratio.pow(2).flatten(1).mean(1).sqrt().max().item<double>();  // one sync
      if (E <= 1.0) {
        ctx.step_done(accepted++, -1, s.t, t.t, x, hi, to_end);
        x_prev = lo;
        x = hi;
        s = t;
        eps_s = at::Tensor();
        if (to_end) return x;
      }
      const double shrink = E > 0.0 ? 0.9 * std::pow(E, -1.0 / order_) : 5.0;
      h = h * std::min(shrink, 5.0);
      if (dir * (s.lambda + h - lam_end) > 0.0) h = lam_end - s.lambda;
    }
  }

 private:
  void step_pair(const RunContext& ctx, const at::Tensor& x, const at::Tensor& eps_s,
                 const LambdaPoint& s, const LambdaPoint& t, at::Tensor& lo, at::Tensor& hi) const {
    const NoiseSchedule& k = *ctx.kernel;
    const double h = t.lambda - s.lambda;
    const double phi_t = t.sigma * std::expm1(h);
    const at::Tensor base = at::mul(x, t.alpha / s.alpha).sub_(eps_s, phi_t);
    if (order_ == 2) {
      const double r1 = 0.5;
      const LambdaPoint s1 = LambdaPoint::at(k, k.t_of_lambda(s.lambda + r1 * h));
      const at::Tensor u =
          at::mul(x, s1.alpha / s.alpha).sub_(eps_s, s1.sigma * std::expm1(r1 * h));
      const at::Tensor d1 = ctx.predictor.eps(u, s1.t) - eps_s;
      lo = base;
      hi = base - d1 * (phi_t / (2.0 * r1));
      return;
    }
    const double r1 = 1.0 / 3.0, r2 = 2.0 / 3.0;
    const LambdaPoint s1 = LambdaPoint::at(k, k.t_of_lambda(s.lambda + r1 * h));
    const LambdaPoint s2 = LambdaPoint::at(k, k.t_of_lambda(s.lambda + r2 * h));
    const at::Tensor u1 = at::mul(x, s1.alpha / s.alpha).sub_(eps_s, s1.sigma * std::expm1(r1 * h));
    const at::Tensor d1 = ctx.predictor.eps(u1, s1.t) - eps_s;
    const double e2 = std::expm1(r2 * h);
    const at::Tensor u2 = at::mul(x, s2.alpha / s.alpha)
                              .sub_(eps_s, s2.sigma * e2)
                              .sub_(d1, s2.sigma * r2 / r1 * (e2 / (r2 * h) - 1.0));
    const at::Tensor d2 = ctx.predictor.eps(u2, s2.t) - eps_s;
    lo = base - d1 * (phi_t / (2.0 * r1));
    hi = base - d2 * (t.sigma / r2 * (std::expm1(h) / h - 1.0));
  }

  int order_;
  double rtol_, atol_;
  int max_steps_;
  std::string name_;
};
}  // namespace

std::unique_ptr<Sampler> make_dpm_solver_adaptive(int order, const SamplerOptions& o) {
  return std::make_unique<AdaptiveDPMSolver>(order, o);
}

}  // namespace sdekit
