#pragma once
// A Gaussian kernel density estimate of 2-D samples, for plots of models without an exact
// density: p(u, v) = 1/(n 2 pi hx hy) sum_i exp(-((u - x_i)/hx)^2/2 - ((v - y_i)/hy)^2/2), with
// Scott's bandwidth per axis, h = n^(-1/6) std (docs/theory.md section 6).
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace sdekit {

class KernelDensity2D {
 public:
  /// points [n, 2] (any floating dtype or device); rows with a non-finite entry are dropped.
  /// Throws std::invalid_argument for another shape or when no row is finite.
  explicit KernelDensity2D(const at::Tensor& points);
  double log_density(double u, double v) const;
  int64_t size() const { return n_; }
  double bandwidth_x() const { return hx_; }
  double bandwidth_y() const { return hy_; }

 private:
  std::vector<double> p_;  // x0, y0, x1, y1, ...
  int64_t n_ = 0;
  double hx_ = 0, hy_ = 0;
};

}  // namespace sdekit
