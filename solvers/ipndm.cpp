// iPNDM and iPNDM-v (improved pseudo-numerical methods, Zhang & Chen 2023; docs/theory.md section
// 4.18): Adams-Bashforth on the PF-ODE in sigma, dx~/dsigma~ = d = (x~ - D) / sigma~, in the
// scaled variables of any affine SDE (section 4.15). With the slopes d_i, d_{i-1}, ... at the
// last grid points and h = sigma~_{i+1} - sigma~_i,
//   x~_{i+1} = x~_i + h sum_k c_k d_{i-k},
// of order p = min(order, i + 1) (the warm-up takes orders 1, 2, ... with 1 NFE each; no lowering
// at the end). ipndm: the fixed coefficients of equal steps, [1], [3, -1]/2, [23, -16, 5]/12,
// [55, -59, 37, -9]/24, on any grid. ipndm-v: coefficients from the actual step sizes h, h1 =
// sigma~_i - sigma~_{i-1}, h2, h3, in diff-sampler's form: exact variable-step AB2, and orders 3
// and 4 by its closed forms (order 4 reduces on equal steps to [57, -65, 43, -11]/24, a method of
// order 3). Orders: ipndm 2 on grids not uniform in sigma~ (the fixed coefficients' mismatch
// with the steps leaves a local error O(h (h - h1)) = O(h^3)), ipndm-v 3. The step to sigma~ = 0
// is the final Euler step x = D (SampleRequest::to_zero).
#include <algorithm>
#include <array>
#include <stdexcept>
#include <string>

#include "solvers/detail/sigma_multistep.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
using detail::SigmaPoint;

/// The equal-step Adams-Bashforth coefficients of order p (1..4), newest slope first.
std::array<double, 4> ipndm_fixed(int p) {
  switch (p) {
    case 1:
      return {1.0, 0.0, 0.0, 0.0};
    case 2:
      return {1.5, -0.5, 0.0, 0.0};
    case 3:
      return {23.0 / 12.0, -16.0 / 12.0, 5.0 / 12.0, 0.0};
    default:
      return {55.0 / 24.0, -59.0 / 24.0, 37.0 / 24.0, -9.0 / 24.0};
  }
}

}  // namespace

/// diff-sampler's variable-step coefficients for the step h after steps h1, h2, h3 (order p).
std::array<double, 4> ipndm_v_coefficients(int p, double h, double h1, double h2, double h3) {
  if (p == 1) return {1.0, 0.0, 0.0, 0.0};
  if (p == 2) return {1.0 + h / (2.0 * h1), -h / (2.0 * h1), 0.0, 0.0};
  const double T1 = 0.5 * (1.0 - h * h / (3.0 * h1 * (h1 + h2)));
  if (p == 3)
    return {1.0 + h / (2.0 * h1) + T1, -h / (2.0 * h1) - (1.0 + h1 / h2) * T1, T1 * h1 / h2, 0.0};
  const double R = h1 * (h1 + h2) / (h2 * (h2 + h3));
  const double T2 = (0.5 * (1.0 - h / (3.0 * (h + h1))) +
                     (1.0 - h / (2.0 * (h + h1))) * h / (6.0 * (h + h1 + h2))) *
                    h * (h + h1) * (h + h1 + h2) / (h1 * (h1 + h2) * (h1 + h2 + h3));
  return {1.0 + h / (2.0 * h1) + T1 + T2,
          -h / (2.0 * h1) - (1.0 + h1 / h2) * T1 - (1.0 + h1 / h2 + R) * T2,
          T1 * h1 / h2 + (h1 / h2 + R * (1.0 + h2 / h3)) * T2, -T2 * R * h1 / h2};
}

namespace {

class IPNDM final : public Sampler {
 public:
  IPNDM(int order, bool variable) : order_(order), variable_(variable) {
    if (order < 1 || order > 4)
      throw std::invalid_argument(std::string(variable ? "ipndm-v" : "ipndm") +
                                  ": order must lie in [1, 4], got " + std::to_string(order));
  }
  std::string_view name() const override { return variable_ ? "ipndm-v" : "ipndm"; }
  /// Section 4.18: the equal-step coefficients are of order 2 on a grid not uniform in sigma~;
  /// ipndm-v's order-3 and order-4 formulas are of order 3.
  double order() const override { return std::min(order_, variable_ ? 3 : 2); }
  bool stochastic() const override { return false; }
  int nfe_per_step() const override { return 1; }
  bool needs_kernel() const override { return true; }

 protected:
  at::Tensor integrate(const RunContext& ctx, const at::Tensor& x_init) const override {
    const NoiseSchedule& k = *ctx.kernel;
    const int steps = ctx.steps();
    at::Tensor x = x_init;
    detail::PredictionHistory<4> slopes(ctx, "slope");
    SigmaPoint s = SigmaPoint::at(k, ctx.times[0]);
    for (int i = 0; i < steps; ++i) {
      const SigmaPoint t = SigmaPoint::at(k, ctx.times[i + 1]);
      at::Tensor& d = slopes.fresh(x);
      detail::sigma_slope_into(ctx, x, s, d);
      slopes.push(d, s.sigma);
      const int p = std::min(order_, slopes.size());
      const double h = t.sigma - s.sigma;
      std::array<double, 4> c;
      if (variable_) {
        auto gap = [&](int j) {
          return j + 1 < slopes.size() ? slopes.node(j) - slopes.node(j + 1) : 1.0;
        };
        c = ipndm_v_coefficients(p, h, gap(0), gap(1), gap(2));
      } else {
        c = ipndm_fixed(p);
      }
      for (double& v : c) v *= h;
      at::Tensor& next = ctx.state(i, x);
      detail::sigma_multistep_update(next, x, s, t, slopes, p, c);
      ctx.step_done(i, steps, s.t, t.t, x, next, i + 1 == steps);
      x = next;
      s = t;
    }
    return x;
  }

 private:
  int order_;
  bool variable_;
};
}  // namespace

std::unique_ptr<Sampler> make_ipndm(const SamplerOptions& o) {
  return std::make_unique<IPNDM>(o.ipndm_order, false);
}
std::unique_ptr<Sampler> make_ipndm_v(const SamplerOptions& o) {
  return std::make_unique<IPNDM>(o.ipndm_order, true);
}

}  // namespace sdekit
