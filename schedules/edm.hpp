#pragma once
#include <cmath>

#include "schedules/noise_schedule.hpp"

namespace sdekit {

/// EDM (Karras et al. 2022): time is the noise level, alpha = 1, sigma = t on [0, sigma_max];
/// f = 0, g2 = 2 t. Sampling stops at sigma_min by default.
class EDM final : public NoiseSchedule {
 public:
  explicit EDM(double sigma_min = 0.002, double sigma_max = 80.0);
  std::string name() const override { return "edm"; }
  Interval domain() const override { return {0.0, smax_}; }
  double default_t_end() const override { return smin_; }
  /// Karras et al.'s rho-spacing in sigma (docs/theory.md section 1).
  std::string default_grid_name() const override { return "karras"; }
  double log_alpha(double t) const override;
  double sigma(double t) const override;
  double log_sigma(double t) const override { return std::log(sigma(t)); }
  double t_of_lambda(double lam) const override;
  double f(double t) const override;
  double g2(double t) const override;
  double sigma_min() const { return smin_; }
  double sigma_max() const { return smax_; }

 private:
  double smin_, smax_;
};

}  // namespace sdekit
