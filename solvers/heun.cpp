// Heun's method (explicit trapezoidal RK2) on the probability-flow ODE, as an odeint generic
// Runge-Kutta tableau: c = (0, 1), a21 = 1, b = (1/2, 1/2). Global order 2, 2 NFE per step
// (the second at the step's end time, which stays > t_end's domain start).
#include <boost/numeric/odeint/stepper/explicit_generic_rk.hpp>

#include "solvers/detail/odeint_tensor.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
namespace odeint = boost::numeric::odeint;
using Stepper = odeint::explicit_generic_rk<2, 2, at::Tensor, double, at::Tensor, double,
                                            odeint::vector_space_algebra, detail::InplaceOperations,
                                            odeint::initially_resizer>;

class HeunOde final : public detail::OdeintFixedStep<Stepper, HeunOde> {
 public:
  std::string_view name() const override { return "heun"; }
  double order() const override { return 2.0; }
  int nfe_per_step() const override { return 2; }
  Stepper make_stepper() const {
    const boost::array<double, 1> a1 = {{1.0}};
    const Stepper::coef_a_type a(a1);
    const Stepper::coef_b_type b = {{0.5, 0.5}};
    const Stepper::coef_c_type c = {{0.0, 1.0}};
    return Stepper(a, b, c);
  }
};
}  // namespace

std::unique_ptr<Sampler> make_heun(const SamplerOptions&) {
  return std::make_unique<HeunOde>();
}

}  // namespace sdekit
