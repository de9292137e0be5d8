#pragma once
// alpha(t) and sigma(t) of a schedule for one time per batch row, as tensors: the per-row form
// models and training use (x_t = alpha x0 + sigma eps row by row).
#include <ATen/ATen.h>

#include "schedules/noise_schedule.hpp"

namespace sdekit {

struct RowCoefficients {
  at::Tensor alpha, sigma;  // [n] float64 on the CPU
};

/// alpha(t_i), sigma(t_i) for the times t (n entries, any dtype or device; copied to the host
/// once, which on a device is one sync). Throws std::invalid_argument (from the schedule) for a
/// time outside its domain.
RowCoefficients row_coefficients(const NoiseSchedule& k, const at::Tensor& t);

}  // namespace sdekit
