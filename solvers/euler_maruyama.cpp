// Euler-Maruyama on the reverse-time SDE (docs/theory.md section 4.1), from s down to t < s:
//   x_t = x_s - [f(x_s, s) - g2(s) score(x_s, s)] (s - t) + g(s) sqrt(s - t) z,  z ~ N(0, I).
// Works for any SDE (callback SDEs too). With additive noise: strong order 1, weak order 1.
// 1 NFE per step; noise is added on every step, the last included. On an affine SDE a step
// allocates nothing in steady state.
#include <cmath>

#include "solvers/detail/inplace.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
class EulerMaruyama final : public FixedStepSampler {
 public:
  std::string_view name() const override { return "euler-maruyama"; }
  double order() const override { return 1.0; }
  bool stochastic() const override { return true; }
  int nfe_per_step() const override { return 1; }

 protected:
  void step_into(const StepContext& ctx, const at::Tensor& x, double s, double t,
                 at::Tensor& out) const override {
    const double h = s - t, g2 = ctx.sde().g2(s);
    at::Tensor& z = ctx.run.buffer("noise", x);
    ctx.run.standard_normal_into(z, s, t);
    if (ctx.run.affine) {
      // Affine drift f x and score = cx x + cp raw: out = (1 - h f + h g2 cx) x + h g2 cp raw + g
      // sqrt(h) z.
      const Predictor::Linear sc = ctx.predictor().linear(Param::Score, x, s);
      const double f = ctx.run.affine->f(s);
      detail::lincomb(
          out,
          {{1.0 - h * f + h * g2 * sc.cx, x}, {h * g2 * sc.cp, sc.raw}, {std::sqrt(g2 * h), z}});
      return;
    }
    const at::Tensor score = ctx.predictor().score(x, s);  // a user SDE: its drift allocates
    out.copy_(x - h * ctx.sde().reverse_drift(x, s, score));
    out.add_(z, std::sqrt(g2 * h));
  }
};
}  // namespace

std::unique_ptr<Sampler> make_euler_maruyama(const SamplerOptions&) {
  return std::make_unique<EulerMaruyama>();
}

}  // namespace sdekit
