#pragma once
#include <cmath>

#include "schedules/noise_schedule.hpp"

namespace sdekit {

/// VE SDE (NCSN, Song et al. 2021) on t in [0, 1]: alpha = 1,
/// sigma = sigma_min (sigma_max/sigma_min)^t, f = 0, g2 = 2 sigma^2 log(sigma_max/sigma_min).
class VE final : public NoiseSchedule {
 public:
  explicit VE(double sigma_min = 0.01, double sigma_max = 50.0);
  std::string name() const override { return "ve"; }
  Interval domain() const override { return {0.0, 1.0}; }
  double default_t_end() const override { return 1e-5; }
  double log_alpha(double t) const override;
  double sigma(double t) const override { return std::exp(log_sigma(t)); }
  double log_sigma(double t) const override;
  double t_of_lambda(double lam) const override;
  double f(double t) const override;
  double g2(double t) const override;

 private:
  double smin_, smax_, log_ratio_;
};

}  // namespace sdekit
