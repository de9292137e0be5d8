// Restart sampling (Xu et al. 2023; docs/theory.md section 4.20): Heun on the PF-ODE in the
// scaled variables (section 4.15) along the main grid, and at the grid point whose sigma~ is
// nearest restart_tmin (sigma~_j), K times: re-noise forward to restart_tmax exactly,
//   x~ <- x~ + sqrt(restart_tmax^2 - sigma~_j^2) z,   z ~ N(0, I),
// (the forward process in x~ adds variance d(sigma~^2)), then Heun back from restart_tmax to
// sigma~_j over restart_steps steps of a Karras sub-grid (rho = 7). With the exact score every
// part keeps the marginals up to the ODE's error, and the re-noising contracts the errors made
// before it. 2 NFE per Heun step: main steps x 2 + K x restart_steps x 2. K = 0 is Heun in sigma~
// (edm-heun without churn). The noise comes from the run's generator (or replayed blocks), not a
// Brownian path: it is no increment of one.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "solvers/detail/inplace.hpp"
#include "solvers/detail/sigma_space.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
using detail::SigmaPoint;

class Restart final : public Sampler {
 public:
  explicit Restart(const SamplerOptions& o)
      : tmin_(o.restart_tmin), tmax_(o.restart_tmax), K_(o.restart_k), n_(o.restart_steps) {
    if (!(tmin_ > 0.0) || !(tmax_ > tmin_) || !std::isfinite(tmax_))
      throw std::invalid_argument("sampler restart: need 0 < restart-tmin < restart-tmax, got " +
                                  std::to_string(tmin_) + ", " + std::to_string(tmax_));
    if (K_ < 0 || n_ < 1)
      throw std::invalid_argument("sampler restart: restart-k must be >= 0 and restart-steps >= 1");
  }
  std::string_view name() const override { return "restart"; }
  double order() const override { return 2; }
  bool stochastic() const override { return K_ > 0; }
  bool uses_brownian_path() const override { return false; }
  int nfe_per_step() const override { return 2; }
  bool needs_kernel() const override { return true; }
  int steps_for_nfe(int nfe) const override {
    const int extra = 2 * K_ * n_;
    if (nfe < extra + 2)
      throw std::invalid_argument("sampler restart: an NFE budget of " + std::to_string(nfe) +
                                  " buys no main step (the restarts take " + std::to_string(extra) +
                                  ")");
    return (nfe - extra) / 2;
  }

 protected:
  at::Tensor integrate(const RunContext& ctx, const at::Tensor& x_init) const override {
    const NoiseSchedule& k = *ctx.kernel;
    const int steps = ctx.steps();
    // The restart point: the grid point (after the start) whose sigma~ is nearest tmin, below tmax.
    int j = -1;
    double best = 0.0;
    for (int i = 1; i <= steps; ++i) {
      const double s = SigmaPoint::at(k, ctx.times[size_t(i)]).sigma;
      if (s >= tmax_) continue;
      const double d = std::abs(std::log(s / tmin_));
      if (j < 0 || d < best) j = i, best = d;
    }
    const double sig_top = SigmaPoint::at(k, k.domain().hi).sigma;
    if (K_ > 0 && (j < 0 || tmax_ > sig_top))
      throw std::invalid_argument(
          "sampler restart: the grid has no point below restart-tmax, or restart-tmax exceeds "
          "the schedule's largest sigma/alpha (" +
          std::to_string(sig_top) + ")");
    at::Tensor x = x_init;
    for (int i = 0; i < steps; ++i) {
      at::Tensor& next = ctx.state(i, x);
      heun(ctx, x, ctx.times[size_t(i)], ctx.times[size_t(i + 1)], next);
      if (i + 1 == j && K_ > 0) restart(ctx, next, ctx.times[size_t(j)]);
      ctx.step_done(i, steps, ctx.times[size_t(i)], ctx.times[size_t(i + 1)], x, next,
                    i + 1 == steps);
      x = next;
    }
    return x;
  }

 private:
  // Heun in (sigma~, x~) from s to t, into out.
  static void heun(const RunContext& ctx, const at::Tensor& x, double s_t, double t_t,
                   at::Tensor& out) {
    const NoiseSchedule& k = *ctx.kernel;
    const SigmaPoint s = SigmaPoint::at(k, s_t), t = SigmaPoint::at(k, t_t);
    at::Tensor& D = ctx.buffer("x0", x);
    at::Tensor& d = ctx.buffer("slope", x);
    at::Tensor& u = ctx.buffer("euler", x);
    detail::predict_into(ctx.predictor, Param::X0, x, s.t, D);
    detail::lincomb(d, {{1.0 / (s.alpha * s.sigma), x}, {-1.0 / s.sigma, D}});
    const double h = t.sigma - s.sigma;
    detail::lincomb(u, {{t.alpha / s.alpha, x}, {t.alpha * h, d}});  // alpha_t (x~ + h d)
    detail::predict_into(ctx.predictor, Param::X0, u, t.t, D);
    // d' = (u / alpha_t - D) / sigma~_t; out = alpha_t (x~ + h (d + d') / 2).
    detail::lincomb(out, {{t.alpha / s.alpha, x},
                          {0.5 * t.alpha * h, d},
                          {0.5 * h / t.sigma, u},
                          {-0.5 * t.alpha * h / t.sigma, D}});
  }

  // K restarts from the grid point at time tj (x in place): re-noise to tmax, Heun back.
  void restart(const RunContext& ctx, at::Tensor& x, double tj) const {
    const NoiseSchedule& k = *ctx.kernel;
    const SigmaPoint pj = SigmaPoint::at(k, tj);
    const double t_top = k.t_of_lambda(-std::log(tmax_));
    const SigmaPoint top = SigmaPoint::at(k, t_top);
    // The Karras sub-grid from sigma~(t_top) to sigma~_j.
    std::vector<double> sub(size_t(n_) + 1);
    const double a = std::pow(top.sigma, 1.0 / 7.0), b = std::pow(pj.sigma, 1.0 / 7.0);
    for (int q = 0; q <= n_; ++q)
      sub[size_t(q)] = k.t_of_lambda(-7.0 * std::log(a + (double(q) / n_) * (b - a)));
    sub.front() = t_top;
    sub.back() = tj;
    at::Tensor& z = ctx.buffer("restart_noise", x);
    at::Tensor& y = ctx.buffer("restart_state", 0, x);
    at::Tensor& y2 = ctx.buffer("restart_state", 1, x);
    for (int r = 0; r < K_; ++r) {
      ctx.standard_normal_into(z, tj, t_top);
      const double c = std::sqrt(std::max(0.0, top.sigma * top.sigma - pj.sigma * pj.sigma));
      detail::lincomb(y, {{top.alpha / pj.alpha, x}, {top.alpha * c, z}});
      at::Tensor* cur = &y;
      at::Tensor* nxt = &y2;
      for (int q = 0; q < n_; ++q) {
        heun(ctx, *cur, sub[size_t(q)], sub[size_t(q + 1)], *nxt);
        std::swap(cur, nxt);
      }
      x.copy_(*cur);
    }
  }

  double tmin_, tmax_;
  int K_, n_;
};
}  // namespace

std::unique_ptr<Sampler> make_restart(const SamplerOptions& o) {
  return std::make_unique<Restart>(o);
}

}  // namespace sdekit
