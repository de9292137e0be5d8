#pragma once
#include <string>
#include <vector>

#include "schedules/noise_schedule.hpp"

namespace sdekit {

/// VP schedule from a discrete DDPM beta table beta_1..beta_N (Ho et al. 2020):
/// abar_n = prod_{j<=n} (1 - beta_j), t_n = n/N, abar_0 = 1. log alpha is interpolated
/// piecewise-linearly in t between the knots, sigma = sqrt(1 - alpha^2); so f is piecewise
/// constant (the slope of the segment [t_n, t_{n+1}) holding t) and g2 = -2 f.
class VPDiscrete final : public NoiseSchedule {
 public:
  /// betas: beta_1..beta_N, each in (0, 1); name: the schedule's name in errors and results.
  explicit VPDiscrete(std::vector<double> betas, std::string name = "vp-discrete");
  /// The DDPM table: N betas linear from beta_1 to beta_N (defaults 1e-4 .. 0.02, N = 1000).
  static VPDiscrete linear(int N = 1000, double beta_1 = 1e-4, double beta_N = 0.02);
  /// Stable Diffusion's "scaled linear" table (Rombach et al. 2022): sqrt(beta) linear from
  /// sqrt(beta_1) to sqrt(beta_N) (defaults 0.00085 .. 0.012, N = 1000), named "vp-sd"; its
  /// sigma/alpha runs from 0.0291672 at t_1 to 14.6146 at t_N = 1.
  static VPDiscrete scaled_linear(int N = 1000, double beta_1 = 0.00085, double beta_N = 0.012);

  std::string name() const override { return name_; }
  Interval domain() const override { return {0.0, 1.0}; }
  /// t_1 = 1/N, the first noisy knot.
  double default_t_end() const override { return 1.0 / static_cast<double>(steps()); }
  double log_alpha(double t) const override;
  double sigma(double t) const override;
  double log_sigma(double t) const override;
  double t_of_lambda(double lam) const override;
  double f(double t) const override;
  double g2(double t) const override { return -2.0 * f(t); }

  /// N, the number of training steps.
  int steps() const { return static_cast<int>(log_alpha_.size()) - 1; }
  double beta(int n) const { return betas_.at(static_cast<size_t>(n - 1)); }
  /// abar_n at knot n (0 <= n <= N).
  double alpha_bar(int n) const;

 private:
  std::vector<double> betas_;
  std::string name_;
  std::vector<double> log_alpha_;  // knots n = 0..N
};

}  // namespace sdekit
