#include "solvers/noise.hpp"

namespace sdekit {

at::Tensor normal_like(const at::Tensor& x, at::Generator& gen) {
  if (gen.device().type() == x.device().type()) return at::randn(x.sizes(), gen, x.options());
  return at::randn(x.sizes(), gen, x.options().device(gen.device())).to(x.device());
}

}  // namespace sdekit

namespace sdekit {

at::Tensor draw_prior(const SDE& sde, at::IntArrayRef shape, at::Generator& gen,
                      at::TensorOptions options) {
  at::Tensor z = at::randn(shape, gen, options.device(gen.device()));
  return (sde.prior_std() * z).to(options.device_opt().value_or(at::kCPU));
}

}  // namespace sdekit
