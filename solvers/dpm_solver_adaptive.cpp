// Adaptive DPM-Solver-12 and -23 (Lu et al. 2022, section 3.3 and Algorithm 4) and their
// data-prediction forms DPM-Solver++-12 and -23 (docs/theory.md section 4.5): each attempted
// step from s by h in lambda computes a lower- and a higher-order singlestep solution that share
// model calls, and controls the local error between them:
//   12: lower = order 1, higher = order 2 (r1 = 1/2); 2 NFE per attempt.
//   23: lower = order 2 (r1 = 1/3), higher = order 3 (r1 = 1/3, r2 = 2/3); 3 NFE per attempt.
//   delta = max(atol, rtol max(|x_lower|, |x_prev|)),
//   E = max over rows of RMS((x_high - x_low) / delta);
//   accept if E <= 1 (x <- x_high, x_prev <- x_low);
//   then h <- min(0.9 h min(E^{-1/k}, max_growth / 0.9), lambda_end - lambda_s)
// with k the higher order, starting from h = 0.05 (the paper's defaults theta = 0.9,
// h_init = 0.05). sdekit caps the growth at max_growth = 5 per attempt; the official controller
// has no cap (max_growth = inf) and rounds E^{-1/k} to float32 (factor_float32). The noise
// prediction's updates (dpm-solver-*):
//   order 1: x_t = (alpha_t/alpha_s) x - sigma_t expm1(h) eps_s
//   order 2: the DPM-Solver-2 update with D1 = eps(u1, s1) - eps_s (dpm_stages.hpp)
//   order 3: the DPM-Solver-3 update
// and the data prediction's (dpmpp-*), with phi_1 = expm1(-h), phi_2 = phi_1 / h + 1:
//   order 1: x_t = (sigma_t/sigma_s) x - alpha_t phi_1 m_s
//   u1 = (sigma_s1/sigma_s) x - alpha_s1 expm1(-r1 h) m_s, m_s1 = x0(u1, s1)
//   order 2: x_t = (sigma_t/sigma_s) x - alpha_t phi_1 m_s - alpha_t phi_1 / (2 r1) (m_s1 - m_s)
//   u2 = (sigma_s2/sigma_s) x - alpha_s2 expm1(-r2 h) m_s
//        + (r2/r1) alpha_s2 (expm1(-r2 h)/(r2 h) + 1) (m_s1 - m_s),   m_s2 = x0(u2, s2)
//   order 3: x_t = (sigma_t/sigma_s) x - alpha_t phi_1 m_s + (alpha_t phi_2 / r2) (m_s2 - m_s).
// The model call at s is kept across rejected attempts, so a run makes fewer model calls than
// the official count, order x attempts (SampleResult::attempts gives both). E is reduced on the
// host: one device sync per attempt on CUDA (a scan in place on the CPU). Attempts write into
// run buffers and allocate nothing.
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
  AdaptiveDPMSolver(int order, const SamplerOptions& o, bool data)
      : order_(order),
        data_(data),
        rtol_(o.rtol),
        atol_(o.atol),
        max_growth_(o.max_growth),
        factor_float32_(o.factor_float32),
        max_steps_(o.max_steps) {
    name_ = std::string(data ? "dpmpp-" : "dpm-solver-") + (order == 2 ? "12" : "23");
    if (!(max_growth_ > 1.0))
      throw std::invalid_argument(name_ + ": max_growth must be > 1 (or inf), got " +
                                  std::to_string(max_growth_));
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
      // The states, lower solutions and the prediction at s live in run buffers (the
      // prediction is kept across rejections).
      at::Tensor& m_s = ctx.buffer("model_s", x);
      if (!have_eps)
        detail::predict_into(ctx.predictor, data_ ? Param::X0 : Param::Eps, x, s.t, m_s);
      have_eps = true;
      ctx.count_attempt();
      at::Tensor& hi = ctx.state(accepted, x);
      at::Tensor& lo = ctx.buffer("lower", accepted % 2, x);
      if (data_)
        step_pair_data(ctx, x, m_s, s, t, lo, hi);
      else
        step_pair(ctx, x, m_s, s, t, lo, hi);
      const double E = error_norm(lo, hi, x_prev);  // one sync on CUDA
      if (E <= 1.0) {
        ctx.step_done(accepted++, -1, s.t, t.t, x, hi, to_end);
        x_prev = lo;
        x = hi;
        s = t;
        have_eps = false;
        if (to_end) return x;
      }
      double factor = E > 0.0 ? std::pow(E, -1.0 / order_) : HUGE_VAL;
      if (factor_float32_) factor = static_cast<float>(factor);
      factor = std::min(factor, max_growth_ / 0.9);
      h = std::isfinite(factor) ? (0.9 * h) * factor : lam_end - s.lambda;
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

  // The data-prediction pair (header comment), with m_s = x0(x, s).
  void step_pair_data(const RunContext& ctx, const at::Tensor& x, const at::Tensor& m_s,
                      const LambdaPoint& s, const LambdaPoint& t, at::Tensor& lo,
                      at::Tensor& hi) const {
    const NoiseSchedule& k = *ctx.kernel;
    const double h = t.lambda - s.lambda, phi1 = std::expm1(-h);
    const double r1 = order_ == 2 ? 0.5 : 1.0 / 3.0, r2 = 2.0 / 3.0;
    const LambdaPoint s1 = LambdaPoint::at(k, k.t_of_lambda(s.lambda + r1 * h));
    at::Tensor& u = ctx.buffer("u1", x);
    at::Tensor& d1 = ctx.buffer("d1", x);  // m_s1 - m_s
    detail::lincomb(u, {{s1.sigma / s.sigma, x}, {-s1.alpha * std::expm1(-r1 * h), m_s}});
    const Predictor::Linear p1 = ctx.predictor.linear(Param::X0, u, s1.t);
    detail::lincomb(d1, {{p1.cp, p1.raw}, {p1.cx, u}, {-1.0, m_s}});
    const double ct = t.sigma / s.sigma, c1 = -t.alpha * phi1;
    if (order_ == 2) {
      detail::lincomb(lo, {{ct, x}, {c1, m_s}});
      detail::lincomb(hi, {{ct, x}, {c1, m_s}, {c1 / (2.0 * r1), d1}});
      return;
    }
    detail::lincomb(lo, {{ct, x}, {c1, m_s}, {c1 / (2.0 * r1), d1}});
    const LambdaPoint s2 = LambdaPoint::at(k, k.t_of_lambda(s.lambda + r2 * h));
    const double e2 = std::expm1(-r2 * h);
    detail::lincomb(u, {{s2.sigma / s.sigma, x},
                        {-s2.alpha * e2, m_s},
                        {r2 / r1 * s2.alpha * (e2 / (r2 * h) + 1.0), d1}});
    at::Tensor& d2 = ctx.buffer("d2", x);  // m_s2 - m_s
    const Predictor::Linear p2 = ctx.predictor.linear(Param::X0, u, s2.t);
    detail::lincomb(d2, {{p2.cp, p2.raw}, {p2.cx, u}, {-1.0, m_s}});
    detail::lincomb(hi, {{ct, x}, {c1, m_s}, {t.alpha * (phi1 / h + 1.0) / r2, d2}});
  }

  int order_;
  bool data_;
  double rtol_, atol_, max_growth_;
  bool factor_float32_;
  int max_steps_;
  std::string name_;
};
}  // namespace

std::unique_ptr<Sampler> make_dpm_solver_adaptive(int order, const SamplerOptions& o, bool data) {
  return std::make_unique<AdaptiveDPMSolver>(order, o, data);
}

}  // namespace sdekit
