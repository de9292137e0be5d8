#pragma once
#include "schedules/noise_schedule.hpp"

namespace sdekit {

/// VP cosine schedule (Nichol & Dhariwal 2021) in continuous time t in [0, T]:
/// alpha^2 = cos^2(theta(t)) / cos^2(theta(0)), theta(t) = (pi/2) (t + s)/(1 + s),
/// sigma = sqrt(1 - alpha^2), f = -(pi/2)/(1+s) tan(theta), g2 = -2 f.
/// T < 1 keeps clear of the singularity at t = 1 (DPM-Solver uses T = 0.9946).
class VPCosine final : public NoiseSchedule {
 public:
  explicit VPCosine(double s = 0.008, double T = 0.9946);
  std::string name() const override { return "vp-cosine"; }
  Interval domain() const override { return {0.0, T_}; }
  double default_t_end() const override { return 1e-3; }
  double log_alpha(double t) const override;
  double sigma(double t) const override;
  double log_sigma(double t) const override;
  double t_of_lambda(double lam) const override;
  double f(double t) const override;
  double g2(double t) const override;

 private:
  double theta(double t) const;
  double s_, T_, log_cos0_;
};

}  // namespace sdekit
