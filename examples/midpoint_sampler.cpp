// The explicit midpoint rule on the probability-flow ODE dx/dt = v(x, t) (docs/theory.md
// section 2), from s to t with h = t - s:
//   x_t = x + h v(x + (h/2) v(x, s), s + h/2),   v(x, t) = f(x, t) - g2(t) score(x, t) / 2.
// Order 2, 2 NFE per step.
#include "solvers/registry.hpp"

namespace example {
using namespace sdekit;

class Midpoint final : public FixedStepSampler {
 public:
  std::string_view name() const override { return "midpoint"; }
  double order() const override { return 2.0; }
  bool stochastic() const override { return false; }
  int nfe_per_step() const override { return 2; }

 protected:
  void step_into(const StepContext& ctx, const at::Tensor& x, double s, double t,
                 at::Tensor& out) const override {
    auto v = [&](const at::Tensor& y, double tau) {
      return ctx.sde().pf_drift(y, tau, ctx.predictor().score(y, tau));
    };
    const double h = t - s;
    out.copy_(x + h * v(x + 0.5 * h * v(x, s), s + 0.5 * h));
  }
};

// The registry entry: name, one-line summary, factory, and the options it takes (none).
void register_midpoint() {
  register_sampler({"midpoint", "explicit midpoint rule (RK2) on the probability-flow ODE",
                    [](const SamplerOptions&) -> std::unique_ptr<Sampler> {
                      return std::make_unique<Midpoint>();
                    }});
}

}  // namespace example
