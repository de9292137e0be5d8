#pragma once
#include <ATen/ATen.h>

namespace sdekit {

/// Standard normal noise shaped and typed like x, drawn from gen. When gen lives on another
/// device than x (a CPU generator for CUDA samples), the draw is made on gen's device in x's dtype
/// and moved, so the same seed gives the same numbers on every device.
at::Tensor normal_like(const at::Tensor& x, at::Generator& gen);

}  // namespace sdekit

#include "schedules/sde.hpp"

namespace sdekit {

/// x_T ~ N(0, sde.prior_std()^2 I) of the given shape, drawn from gen (see normal_like).
at::Tensor draw_prior(const SDE& sde, at::IntArrayRef shape, at::Generator& gen,
                      at::TensorOptions options);

}  // namespace sdekit
