#pragma once
// The moment check: sample a Gaussian mixture with several samplers and compare the sample mean
// and covariance at t_end with the exact ones of the noised marginal p_{t_end}.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "models/gaussian_mixture.hpp"
#include "schedules/sde.hpp"
#include "schedules/time_grid.hpp"

namespace sdekit {

struct MomentsSpec {
  std::vector<std::string> samplers = {"euler",          "heun",        "rk4",     "ddim",
                                       "dpm-solver-2",   "dpmpp-2m",    "unipc-2", "ancestral",
                                       "euler-maruyama", "sde-dpmpp-2m"};
  int steps = 50;
  int64_t n = 4000;
  uint64_t seed = 0;
  at::ScalarType dtype = at::kDouble;
  GridKind grid = GridKind::UniformT;
  double t_end = -1.0;  // < 0: the SDE's default
};

/// Errors of the sample moments of x [n, D] against a mean m [D] and covariance C [D, D]:
/// mean_err = ||m_hat - m||_2, cov_err = ||C_hat - C||_F / ||C||_F (C_hat with 1/(n - 1)).
struct MomentErrors {
  double mean_err = 0, cov_err = 0;
};
MomentErrors moment_errors(const at::Tensor& x, const at::Tensor& m, const at::Tensor& C);

struct MomentsRow {
  std::string sampler;
  int64_t nfe = 0;
  double mean_err = 0;  // ||m_hat - m||_2
  double cov_err = 0;   // ||C_hat - C||_F / ||C||_F
  double seconds = 0;   // wall time of the run
};

struct MomentsReport {
  double t_end = 0;
  std::vector<double> exact_mean;  // first coordinates of the exact mean (all of them for D <= 8)
  /// The same statistics for n exact samples of p_{t_end}: the sampling-error floor.
  MomentsRow floor;
  std::vector<MomentsRow> rows;
};

/// Runs every sampler in spec from one shared x_T. Throws std::invalid_argument on bad input.
MomentsReport compare_moments(const GaussianMixture& mixture, const SDE& sde,
                              const MomentsSpec& spec);

}  // namespace sdekit
