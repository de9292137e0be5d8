// DPM-Solver++ (Lu et al. 2022b, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
// Probabilistic Models"): exponential integrators of the data prediction x0 = D(x, t),
//   x_t = (sigma_t/sigma_s) x_s + sigma_t int_{lambda_s}^{lambda_t} e^lambda x0(lambda) dlambda,
// h = lambda_t - lambda_s. With the Taylor expansion x0(lambda) = x0 + (lambda - lambda_s) x0'
// + (lambda - lambda_s)^2/2 x0'' the integral is exact term by term:
//   x_t = (sigma_t/sigma_s) x_s + alpha_t [phi0 x0 + phi1 x0' + phi2/2 x0''],
//   phi0 = -expm1(-h), phi1 = h + expm1(-h), phi2 = h^2 - 2h - 2 expm1(-h).
//  1  (1 NFE/step, order 1):  x_t = (sigma_t/sigma_s) x_s - alpha_t expm1(-h) x0_s
//  2S (2 NFE/step, order 2, singlestep, r1 = 1/2): s1 = t(lambda_s + r1 h),
//      u = (sigma_s1/sigma_s) x_s - alpha_s1 expm1(-r1 h) x0_s,
//      D = (1 - 1/(2 r1)) x0_s + 1/(2 r1) x0(u, s1), then the order-1 form with D.
//  2M (1 NFE/step, order 2, multistep): r = h_prev/h, D = (1 + 1/(2r)) x0_s - 1/(2r) x0_prev.
//  3M (1 NFE/step, order 3, multistep): x0' and x0'' from the last three data predictions at
//      lambda_s, lambda_s - h1, lambda_s - h1 - h2 by Newton divided differences,
//      f01 = (x0_s - x0_1)/h1, f12 = (x0_1 - x0_2)/h2, DD = (f01 - f12)/(h1 + h2) (= x0''/2),
//      x0' = f01 + h1 DD, so x_t = (sigma_t/sigma_s) x_s + alpha_t [phi0 x0_s + phi1 x0' + phi2
//      DD]. The reference implementation of DPM-Solver (and implementations copied from it) weights
//      the DD term with phi2/2 instead of phi2 (its "- alpha_t phi_3 D2" with D2 = h^2 DD): the
//      h^3 term of the expansion is then halved and the method is second order in practice.
//      options.dpmpp3m_reference = true reproduces that update for comparison.
// Multistep methods warm up with lower orders (step i uses order min(order, i + 1)) and, on
// grids of fewer than 10 steps, lower the order of the final steps (min(order, steps - i)), as
// the reference implementation's lower_order_final. A step ending where sigma = 0 or alpha = 0
// (lambda infinite) is the order-1 limit. Works in both time directions. Steps write into run
// buffers and allocate nothing in steady state.
#include <cmath>
#include <stdexcept>
#include <string>

#include "solvers/detail/exp_integrator.hpp"
#include "solvers/detail/multistep.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
using detail::LambdaPoint;

class DPMSolverPP final : public Sampler {
 public:
  DPMSolverPP(int order, bool multistep, bool reference3m,
              LowerOrderFinal lower_final = LowerOrderFinal::Below10)
      : order_(order), multistep_(multistep), reference3m_(reference3m), lower_final_(lower_final) {
    name_ = "dpmpp-" + std::to_string(order) + (order == 1 ? "" : multistep ? "m" : "s");
  }
  std::string_view name() const override { return name_; }
  double order() const override { return reference3m_ ? 2.0 : order_; }
  bool stochastic() const override { return false; }
  int nfe_per_step() const override { return multistep_ ? 1 : order_; }
  bool needs_kernel() const override { return true; }

 protected:
  at::Tensor integrate(const RunContext& ctx, const at::Tensor& x_init) const override {
    const NoiseSchedule& k = *ctx.kernel;
    const int steps = ctx.steps();
    at::Tensor x = x_init;
    LambdaPoint s = LambdaPoint::at(k, ctx.times[0]);
    detail::PredictionHistory<2> prev(ctx, "x0");  // earlier data predictions, newest first
    for (int i = 0; i < steps; ++i) {
      const LambdaPoint t = LambdaPoint::at(k, ctx.times[i + 1]);
      at::Tensor& m0 = prev.fresh(x);
      detail::predict_into(ctx.predictor, Param::X0, x, s.t, m0);
      const int order =
          multistep_ ? detail::multistep_order(order_, i, steps, lower_final_) : order_;
      at::Tensor& next = ctx.state(i, x);
      if (order == 1 || t.singular()) {
        detail::dpm1_x0(x, m0, s, t, next);
      } else if (!multistep_) {
        singlestep2(ctx, x, m0, s, t, next);
      } else if (order == 2) {
        const double h = t.lambda - s.lambda, r = (s.lambda - prev.node(0)) / h;
        const double c = -t.alpha * std::expm1(-h);
        detail::lincomb(
            next, {{t.sigma / s.sigma, x}, {c * (1.0 + 0.5 / r), m0}, {-c * 0.5 / r, prev[0]}});
      } else {
        multistep3(x, m0, prev[0], prev[1], s, t, s.lambda - prev.node(0),
                   prev.node(0) - prev.node(1), next);
      }
      ctx.step_done(i, steps, s.t, t.t, x, next, i + 1 == steps);
      x = next;
      prev.push(m0, s.lambda);
      s = t;
    }
    return x;
  }

 private:
  // DPM-Solver++ 2S with r1 = 1/2.
  static void singlestep2(const RunContext& ctx, const at::Tensor& x, const at::Tensor& m0,
                          const LambdaPoint& s, const LambdaPoint& t, at::Tensor& out) {
    const double r1 = 0.5, h = t.lambda - s.lambda;
    const LambdaPoint s1 = LambdaPoint::at(*ctx.kernel, ctx.kernel->t_of_lambda(s.lambda + r1 * h));
    at::Tensor& u = ctx.buffer("u", x);
    at::Tensor& m_s1 = ctx.buffer("x0_u", x);
    detail::lincomb(u, {{s1.sigma / s.sigma, x}, {-s1.alpha * std::expm1(-r1 * h), m0}});
    detail::predict_into(ctx.predictor, Param::X0, u, s1.t, m_s1);
    const double c = -t.alpha * std::expm1(-h);
    detail::lincomb(out,
                    {{t.sigma / s.sigma, x}, {c * (1.0 - 0.5 / r1), m0}, {c * 0.5 / r1, m_s1}});
  }

  void multistep3(const at::Tensor& x, const at::Tensor& m0, const at::Tensor& m1,
                  const at::Tensor& m2, const LambdaPoint& s, const LambdaPoint& t, double h1,
                  double h2, at::Tensor& out) const {
    const double h = t.lambda - s.lambda;
    const double e = std::expm1(-h);
    const double phi0 = -e, phi1 = h + e,
                 phi2 = (h * h - 2.0 * h - 2.0 * e) * (reference3m_ ? 0.5 : 1.0);
    // Newton divided differences as combinations of m0, m1, m2.
    const double H = h1 + h2;
    const double dd0 = 1.0 / (h1 * H), dd1 = -(1.0 / h1 + 1.0 / h2) / H,
                 dd2 = 1.0 / (h2 * H);                                                // DD
    const double d0 = 1.0 / h1 + h1 * dd0, d1 = -1.0 / h1 + h1 * dd1, d2 = h1 * dd2;  // x0'
    const double a = t.alpha;
    detail::lincomb(out, {{t.sigma / s.sigma, x},
                          {a * (phi0 + phi1 * d0 + phi2 * dd0), m0},
                          {a * (phi1 * d1 + phi2 * dd1), m1},
                          {a * (phi1 * d2 + phi2 * dd2), m2}});
  }

  int order_;
  bool multistep_;
  bool reference3m_;
  LowerOrderFinal lower_final_;
  std::string name_;
};
}  // namespace

std::unique_ptr<Sampler> make_dpmpp(const std::string& variant, const SamplerOptions& o) {
  if (variant == "1") return std::make_unique<DPMSolverPP>(1, false, false);
  if (variant == "2s") return std::make_unique<DPMSolverPP>(2, false, false);
  if (variant == "2m") return std::make_unique<DPMSolverPP>(2, true, false, o.lower_order_final);
  if (variant == "3m")
    return std::make_unique<DPMSolverPP>(3, true, o.dpmpp3m_reference, o.lower_order_final);
  throw std::invalid_argument("unknown DPM-Solver++ variant '" + variant +
                              "'; valid: 1, 2s, 2m, 3m");
}

}  // namespace sdekit
