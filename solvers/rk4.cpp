// Classical fourth-order Runge-Kutta on the probability-flow ODE. Global order 4, 4 NFE per step.
#include <boost/numeric/odeint/stepper/runge_kutta4_classic.hpp>

#include "solvers/detail/odeint_tensor.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
namespace odeint = boost::numeric::odeint;
using Stepper =
    odeint::runge_kutta4_classic<at::Tensor, double, at::Tensor, double,
                                 odeint::vector_space_algebra, detail::InplaceOperations>;

class RK4Ode final : public detail::OdeintFixedStep<Stepper, RK4Ode> {
 public:
  std::string_view name() const override { return "rk4"; }
  double order() const override { return 4.0; }
  int nfe_per_step() const override { return 4; }
  Stepper make_stepper() const { return Stepper(); }
};
}  // namespace

std::unique_ptr<Sampler> make_rk4(const SamplerOptions&) {
  return std::make_unique<RK4Ode>();
}

}  // namespace sdekit
