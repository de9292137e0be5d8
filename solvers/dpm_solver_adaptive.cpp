// Adaptive DPM-Solver-12 and -23 (Lu et al. 2022, section 3.3 and Algorithm 4): each attempted
// step from s by h in lambda computes a lower- and a higher-order DPM-Solver (noise prediction)
// solution that share model calls, and controls the local error between them:
//   DPM-Solver-12: lower = DPM-Solver-1, higher = DPM-Solver-2 (r1 = 1/2); 2 NFE per attempt.
//   DPM-Solver-23: lower = DPM-Solver-2 (r1 = 1/3), higher = DPM-Solver-3 (r1 = 1/3, r2 = 2/3);
//                  3 NFE per attempt.
//   delta = max(atol, rtol max(|x_lower|, |x_prev|)),
//   E = max over rows of RMS((x_high - x_low) / delta);
//   accept if E <= 1 (x <- x_high, x_prev <- x_low);
//   then h <- min(0.9 h E^{-1/k}, lambda_end - lambda_s)
// with k the higher order, starting from h = 0.05 (the paper's defaults theta = 0.9,
// h_init = 0.05). The model call at s is kept across rejected attempts. E is reduced on the host:
// one device sync per attempt on CUDA (a scan in place on the CPU). The accepted solution has order
// k (2 or 3) in the tolerance's sense. Attempts write into run buffers and allocate nothing.
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>

#include "solvers/detail/dpm_stages.hpp"
#include "solvers/detail/exp_integrator.hpp"
#include "solvers/detail/inplace.hpp"
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
    at::Tensor x = x_init, x_prev = x_init;
    bool have_eps = false;
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
      // The states, lower solutions and eps_s live in run buffers (kept across rejections).
      at::Tensor& eps_s = ctx.buffer("eps_s", x);
      if (!have_eps) detail::predict_into(ctx.predictor, Param::Eps, x, s.t, eps_s);
      have_eps = true;
      at::Tensor& hi = ctx.state(accepted, x);
      at::Tensor& lo = ctx.buffer("lower", accepted % 2, x);
      step_pair(ctx, x, eps_s, s, t, lo, hi);
      const double E = error_norm(lo, hi, x_prev);  // one sync on CUDA
      if (E <= 1.0) {
        ctx.step_done(accepted++, -1, s.t, t.t, x, hi, to_end);
        x_prev = lo;
        x = hi;
        s = t;
        have_eps = false;
        if (to_end) return x;
      }
      const double shrink = E > 0.0 ? 0.9 * std::pow(E, -1.0 / order_) : 5.0;
      h = h * std::min(shrink, 5.0);
      if (dir * (s.lambda + h - lam_end) > 0.0) h = lam_end - s.lambda;
    }
  }

 private:
  // E = max over rows of RMS((hi - lo) / max(atol, rtol max(|lo|, |prev|))): scanned in place on
  // the CPU, reduced with tensor ops (and one sync) elsewhere.
  double error_norm(const at::Tensor& lo, const at::Tensor& hi, const at::Tensor& prev) const {
    const bool cpu = lo.is_cpu() && lo.is_contiguous() && hi.is_contiguous() &&
                     prev.is_contiguous() && prev.scalar_type() == lo.scalar_type();
    if (cpu && (lo.scalar_type() == at::kFloat || lo.scalar_type() == at::kDouble)) {
      const int64_t n = lo.size(0), m = lo.numel() / n;
      auto scan = [&](auto* l, auto* u, auto* p) {
        double E = 0.0;
        for (int64_t r = 0; r < n; ++r) {
          double acc = 0.0;
          for (int64_t j = r * m; j < (r + 1) * m; ++j) {
            const double d =
                std::max(atol_, rtol_ * std::max(std::abs(double(l[j])), std::abs(double(p[j]))));
            const double q = (double(u[j]) - double(l[j])) / d;
            acc += q * q;
          }
          E = std::max(E, std::sqrt(acc / static_cast<double>(m)));
        }
        return E;
      };
      if (lo.scalar_type() == at::kFloat)
        return scan(lo.data_ptr<float>(), hi.data_ptr<float>(), prev.data_ptr<float>());
      return scan(lo.data_ptr<double>(), hi.data_ptr<double>(), prev.data_ptr<double>());
    }
    const at::Tensor delta = at::maximum(at::abs(lo), at::abs(prev)).mul_(rtol_).clamp_min_(atol_);
    return (hi - lo).div_(delta).pow_(2).flatten(1).mean(1).sqrt_().max().item<double>();
  }

  void step_pair(const RunContext& ctx, const at::Tensor& x, const at::Tensor& eps_s,
                 const LambdaPoint& s, const LambdaPoint& t, at::Tensor& lo, at::Tensor& hi) const {
    const double h = t.lambda - s.lambda;
    const double r1 = order_ == 2 ? 0.5 : 1.0 / 3.0;
    const at::Tensor& d1 = detail::dpm_stage1(ctx, x, eps_s, s, h, r1);
    if (order_ == 2) {  // lower DPM-Solver-1, higher DPM-Solver-2 (r1 = 1/2)
      detail::dpm1_eps(x, eps_s, s, t, lo);
      detail::dpm_update2(x, eps_s, d1, s, t, r1, hi);
      return;
    }
    // lower DPM-Solver-2 (r1 = 1/3), higher DPM-Solver-3 (r1 = 1/3, r2 = 2/3)
    const double r2 = 2.0 / 3.0;
    const at::Tensor& d2 = detail::dpm_stage2(ctx, x, eps_s, d1, s, h, r1, r2);
    detail::dpm_update2(x, eps_s, d1, s, t, r1, lo);
    detail::dpm_update3(x, eps_s, d2, s, t, r2, hi);
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
