#pragma once
// Brownian paths: W(t) on an interval, queried at any (s, t). Stochastic samplers draw their
// noise as increments of a path, so that runs at different step counts see the same path
// (strong-convergence studies) and row i's noise does not depend on the batch size.
#include <ATen/ATen.h>

#include <memory>
#include <stdexcept>

namespace sdekit {

/// The increment of a path over [s, t] together with its time integral:
///   dW = W(t) - W(s),   dZ = Z(s, t) = int_s^t (W(u) - W(s)) du   (an oriented integral: for
///   t < s it is int_t^s (W(s) - W(u)) du).
/// With h = |t - s|: dW ~ N(0, h), Var dZ = h^3 / 3, Cov(dW, dZ) = (t - s) h / 2. Z is the
/// iterated Ito integral I_(1,0) of Kloeden & Platen (1992, section 5.8) that strong order-1.5
/// schemes need; the space-time Levy area of Foster et al. (2020) is H = Z / (t - s) - dW / 2,
/// N(0, h / 12) and independent of dW.
struct BrownianIncrement {
  at::Tensor dW;
  at::Tensor dZ;
};

class BrownianPath {
 public:
  virtual ~BrownianPath() = default;
  /// W(t) - W(s) for every entry of a batch shaped like `like` (its dtype and device), for s, t
  /// in the path's interval. Increments over adjacent intervals add up exactly.
  virtual at::Tensor increment(double s, double t, const at::Tensor& like) const = 0;
  /// W(t) - W(s) and Z(s, t) (see BrownianIncrement) of the same path, shaped like `like`;
  /// dW equals increment(s, t, like). Paths that do not carry the time integral throw
  /// std::logic_error (the default).
  virtual BrownianIncrement increment_and_area(double s, double t, const at::Tensor& like) const {
    (void)s;
    (void)t;
    (void)like;
    throw std::logic_error(
        "this Brownian path has no time integral Z(s, t) = int_s^t (W(u) - W(s)) du; strong "
        "order-1.5 samplers need a path that implements increment_and_area (VirtualBrownianTree)");
  }
};

using BrownianPtr = std::shared_ptr<const BrownianPath>;

}  // namespace sdekit
