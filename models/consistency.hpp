#pragma once
// Consistency functions (Song et al. 2023; docs/theory.md section 4.14). A consistency function
// f(x, t) maps any point x_t of a probability-flow ODE trajectory to the trajectory's end
// x_{t_end}, with f(x, t_end) = x. ScoreModel::consistency_end() marks such models; the
// "consistency" sampler (solvers/consistency.hpp) evaluates them.
//
// The boundary parameterization for any affine schedule x_t = alpha_t x0 + sigma_t eps works in
// EDM's variables x~ = x / alpha (noise level s = sigma / alpha), where the PF-ODE is
// dx~/ds = eps(x, t), and maps back to x at t_end:
//   f(x, t) = alpha_end (c_skip(s) x / alpha_t + c_out(s) F(x, t)),
//   c_skip(s) = sigma_d^2 / ((s - s_end)^2 + sigma_d^2),
//   c_out(s)  = sigma_d (s - s_end) / sqrt(sigma_d^2 + s^2),
// which is the paper's parameterization when alpha = 1 (VE, EDM). At t = t_end the coefficient
// of x is exactly 1 and that of F exactly 0, so f(x, t_end) = x bit for bit whatever F returns
// (if finite).
#include <ATen/ATen.h>

#include "schedules/noise_schedule.hpp"

namespace sdekit {

class ConsistencyBoundary {
 public:
  /// Throws std::invalid_argument unless t_end lies in the kernel's domain with sigma > 0 and
  /// alpha > 0, and sigma_data > 0.
  ConsistencyBoundary(SchedulePtr kernel, double t_end, double sigma_data = 0.5);

  /// f = x_coeff * x + f_coeff * F.
  struct Coeffs {
    double x_coeff = 1.0;
    double f_coeff = 0.0;
  };
  Coeffs at(double t) const;
  /// The same per row: t [n] (any floating dtype) -> two [n] float64 tensors on t's device.
  /// Times within 1e-6 max(1, t_end) of t_end (a float32 t_end) count as t_end.
  std::pair<at::Tensor, at::Tensor> at(const at::Tensor& t) const;
  /// s(t) = sigma_t / alpha_t.
  double noise_level(double t) const;

  const NoiseSchedule& kernel() const { return *kernel_; }
  double t_end() const { return t_end_; }
  double sigma_data() const { return sigma_data_; }

 private:
  SchedulePtr kernel_;
  double t_end_, sigma_data_, s_end_, log_alpha_end_;
};

}  // namespace sdekit
