#pragma once
// Brownian paths: W(t) on an interval, queried at any (s, t). Stochastic samplers draw their
// noise as increments of a path, so that runs at different step counts see the same path
// (strong-convergence studies) and row i's noise does not depend on the batch size.
#include <ATen/ATen.h>

#include <memory>

namespace sdekit {

class BrownianPath {
 public:
  virtual ~BrownianPath() = default;
  /// W(t) - W(s) for every entry of a batch shaped like `like` (its dtype and device), for s, t
  /// in the path's interval. Increments over adjacent intervals add up exactly.
  virtual at::Tensor increment(double s, double t, const at::Tensor& like) const = 0;
};

using BrownianPtr = std::shared_ptr<const BrownianPath>;

}  // namespace sdekit
