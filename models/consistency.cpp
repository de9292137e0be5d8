#include "models/consistency.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace sdekit {

ConsistencyBoundary::ConsistencyBoundary(SchedulePtr kernel, double t_end, double sigma_data)
    : kernel_(std::move(kernel)), t_end_(t_end), sigma_data_(sigma_data) {
  if (!kernel_) throw std::invalid_argument("consistency boundary: no noise schedule");
  const Interval d = kernel_->domain();
  if (!(t_end > d.lo && t_end <= d.hi))
    throw std::invalid_argument("consistency boundary: t_end = " + std::to_string(t_end) +
                                " must lie in (" + std::to_string(d.lo) + ", " +
                                std::to_string(d.hi) + "] of " + kernel_->name());
  if (!(sigma_data > 0.0) || !std::isfinite(sigma_data))
    throw std::invalid_argument("consistency boundary: sigma_data must be > 0, got " +
                                std::to_string(sigma_data));
  s_end_ = noise_level(t_end);
  log_alpha_end_ = kernel_->log_alpha(t_end);
  if (!(s_end_ > 0.0) || !std::isfinite(s_end_))
    throw std::invalid_argument("consistency boundary: sigma/alpha at t_end = " +
                                std::to_string(t_end) + " must be finite and > 0");
}

double ConsistencyBoundary::noise_level(double t) const {
  return std::exp(-kernel_->lambda(t));
}

ConsistencyBoundary::Coeffs ConsistencyBoundary::at(double t) const {
  const double s = noise_level(t), ds = s - s_end_, sd2 = sigma_data_ * sigma_data_;
  // alpha_end / alpha_t, exactly 1 at t = t_end.
  const double r = t == t_end_ ? 1.0 : std::exp(log_alpha_end_ - kernel_->log_alpha(t));
  const double alpha_end = std::exp(log_alpha_end_);
  return {r * sd2 / (ds * ds + sd2), alpha_end * sigma_data_ * ds / std::sqrt(sd2 + s * s)};
}

std::pair<at::Tensor, at::Tensor> ConsistencyBoundary::at(const at::Tensor& t) const {
  const at::Tensor tc = t.reshape({-1}).to(at::kCPU, at::kDouble).contiguous();
  const int64_t n = tc.size(0);
  std::vector<double> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
  const double* tp = tc.data_ptr<double>();
  // Times that arrive in float32 are t_end rounded; within float32's rounding they are t_end.
  const double snap = 1e-6 * std::max(1.0, std::abs(t_end_));
  for (int64_t i = 0; i < n; ++i) {
    const Coeffs c = at(std::abs(tp[i] - t_end_) <= snap ? t_end_ : tp[i]);
    a[static_cast<size_t>(i)] = c.x_coeff;
    b[static_cast<size_t>(i)] = c.f_coeff;
  }
  return {at::tensor(a, at::kDouble).to(t.device()), at::tensor(b, at::kDouble).to(t.device())};
}

}  // namespace sdekit
