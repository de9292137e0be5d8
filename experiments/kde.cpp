#include "experiments/kde.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

namespace sdekit {

KernelDensity2D::KernelDensity2D(const at::Tensor& points) {
  if (!points.defined() || points.dim() != 2 || points.size(1) != 2 ||
      !at::isFloatingType(points.scalar_type())) {
    std::ostringstream os;
    os << "kernel density: expected floating points of shape [n, 2], got ";
    if (points.defined())
      os << points.sizes();
    else
      os << "undefined";
    throw std::invalid_argument(os.str());
  }
  const at::Tensor xs = points.detach().to(at::kCPU, at::kDouble).contiguous();
  const at::Tensor pts = xs.index({at::isfinite(xs).all(1)}).contiguous();
  n_ = pts.size(0);
  if (n_ == 0) throw std::invalid_argument("kernel density: no finite sample");
  const double bw = std::pow(static_cast<double>(std::max<int64_t>(n_, 2)), -1.0 / 6.0);
  const double sx = n_ > 1 ? pts.select(1, 0).std().item<double>() : 0.0;
  const double sy = n_ > 1 ? pts.select(1, 1).std().item<double>() : 0.0;
  hx_ = std::max(1e-12, bw * sx);
  hy_ = std::max(1e-12, bw * sy);
  p_.assign(pts.data_ptr<double>(), pts.data_ptr<double>() + 2 * n_);
}

double KernelDensity2D::log_density(double u, double v) const {
  double sum = 0.0;
  for (int64_t i = 0; i < n_; ++i) {
    const double du = (u - p_[2 * i]) / hx_, dv = (v - p_[2 * i + 1]) / hy_;
    sum += std::exp(-0.5 * (du * du + dv * dv));
  }
  return std::log(sum / (static_cast<double>(n_) * 2 * M_PI * hx_ * hy_));
}

}  // namespace sdekit
