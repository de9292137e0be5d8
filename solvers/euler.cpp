// Euler on the probability-flow ODE: x <- x + h f_pf(x, s), h = t - s < 0.
// Global order 1, 1 NFE per step.
#include <boost/numeric/odeint/stepper/euler.hpp>

#include "solvers/detail/odeint_tensor.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {
namespace {
namespace odeint = boost::numeric::odeint;
using Stepper = odeint::euler<at::Tensor, double, at::Tensor, double, odeint::vector_space_algebra,
                              detail::InplaceOperations>;

class EulerOde final : public detail::OdeintFixedStep<Stepper, EulerOde> {
 public:
  std::string_view name() const override { return "euler"; }
  double order() const override { return 1.0; }
  int nfe_per_step() const override { return 1; }
  Stepper make_stepper() const { return Stepper(); }
};
}  // namespace

std::unique_ptr<Sampler> make_euler(const SamplerOptions&) {
  return std::make_unique<EulerOde>();
}

}  // namespace sdekit
