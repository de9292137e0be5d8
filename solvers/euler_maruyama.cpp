// Euler-Maruyama on the reverse-time SDE (THEORY.md section 4), from s down to t < s:
//   x_t = x_s - [f(x_s, s) - g2(s) score(x_s, s)] (s - t) + g(s) sqrt(s - t) z,  z ~ N(0, I).
// Works for any SDE (callback SDEs too). With additive noise: strong order 1, weak order 1.
// 1 NFE per step; noise is added on every step, the last included.
#include <cmath>

#include "solvers/noise.hpp"
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
  at::Tensor step(const StepContext& ctx, const at::Tensor& x, double s, double t) const override {
    const double h = s - t;
    const at::Tensor score = ctx.predictor().score(x, s);
    at::Tensor out = x - h * ctx.sde().reverse_drift(x, s, score);
    return out.add_(ctx.run.wiener(x, s, t), std::sqrt(ctx.sde().g2(s)));
  }
};
}  // namespace

std::unique_ptr<Sampler> make_euler_maruyama(const SamplerOptions&) {
  return std::make_unique<EulerMaruyama>();
}

}  // namespace sdekit
