#pragma once
// Helpers shared by the sampler tests: least-squares orders, RMS errors, moment checks.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "experiments/order_fit.hpp"
#include "models/gaussian_mixture.hpp"
#include "schedules/noise_schedule.hpp"
#include "solvers/registry.hpp"

namespace sdekit::test {

/// The empirical order over all points (experiments/order_fit.hpp; NFE increasing).
inline double fitted_order(const std::vector<double>& nfe, const std::vector<double>& err) {
  return fit_order(nfe, err, 0, nfe.size() - 1).order;
}

/// Runs sampler `name` with options `o` on `times` from `x`, its noise from a CPU generator seeded
/// with `seed`.
inline SampleResult run_named(const std::string& name, const SamplerOptions& o, ScoreModel& m,
                              const SDE& sde, const std::vector<double>& times, const at::Tensor& x,
                              uint64_t seed = 1) {
  SampleRequest r;
  r.model = &m;
  r.sde = &sde;
  r.times = times;
  r.x_init = x;
  r.generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return make_sampler(name, o)->run(r);
}

/// Root mean square over all entries.
inline double rms(const at::Tensor& a) {
  return a.pow(2).mean().sqrt().item<double>();
}

/// A single Gaussian N(mu, C), C = U diag(s) U^T, whose probability-flow ODE has a closed form.
struct GaussianCase {
  at::Tensor mu, U, s;
  GaussianMixture mixture() const {
    const at::Tensor C = at::matmul(U * s.unsqueeze(0), U.transpose(0, 1));
    return GaussianMixture(at::ones({1}, at::kDouble), mu.unsqueeze(0), C.unsqueeze(0), "gauss");
  }
  /// Exact PF-ODE flow map from time T to t (either direction): GaussianMixture::gaussian_flow.
  at::Tensor flow(const at::Tensor& xT, const NoiseSchedule& k, double T, double t) const {
    return mixture().gaussian_flow(xT, k, T, t);
  }
};

/// A single anisotropic Gaussian N(mu, C) in D = 4 with a fixed random eigenbasis and
/// eigenvalues 0.2, 0.5, 1, 1.5.
inline GaussianCase make_gaussian() {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(7);
  const at::Tensor Q = std::get<0>(at::linalg_qr(at::randn({4, 4}, g, at::kDouble)));
  return {at::tensor({0.5, -1.0, 0.25, 1.5}, at::kDouble), Q,
          at::tensor({0.2, 0.5, 1.0, 1.5}, at::kDouble)};
}

/// A random Gaussian in D dimensions with eigenvalues from 0.2 to 1.5.
inline GaussianCase random_gaussian(int64_t D, uint64_t seed) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor Q = std::get<0>(at::linalg_qr(at::randn({D, D}, g, at::kDouble)));
  return {at::randn({D}, g, at::kDouble), Q, at::linspace(0.2, 1.5, D, at::kDouble)};
}

/// Sample mean/covariance checks with standard errors estimated from the samples themselves:
/// SE(mean_i) = sd(x_i)/sqrt(n); SE(C_ij) = sd((x_i - m_i)(x_j - m_j))/sqrt(n). Each entry must lie
/// within z standard errors plus an absolute allowance `bias` for the discretisation bias.
inline void check_moments(const at::Tensor& x, const at::Tensor& m, const at::Tensor& C, double z,
                          double bias) {
  const int64_t n = x.size(0), D = x.size(1);
  const at::Tensor xd = x.to(at::kDouble);
  const at::Tensor mh = xd.mean(0);
  const at::Tensor xc = xd - mh;
  const at::Tensor se_m = xd.std(0) / std::sqrt(static_cast<double>(n));
  for (int64_t i = 0; i < D; ++i) {
    INFO("mean[" << i << "] = " << mh[i].item<double>() << " vs exact " << m[i].item<double>()
                 << ", SE " << se_m[i].item<double>());
    CHECK(std::abs((mh[i] - m[i]).item<double>()) < z * se_m[i].item<double>() + bias);
  }
  for (int64_t i = 0; i < D; ++i) {
    for (int64_t j = 0; j <= i; ++j) {
      const at::Tensor prod = xc.select(1, i) * xc.select(1, j);
      const double c = prod.sum().item<double>() / static_cast<double>(n - 1);
      const double se = prod.std().item<double>() / std::sqrt(static_cast<double>(n));
      INFO("cov[" << i << "," << j << "] = " << c << " vs exact " << C[i][j].item<double>()
                  << ", SE " << se);
      CHECK(std::abs(c - C[i][j].item<double>()) < z * se + bias);
    }
  }
}

}  // namespace sdekit::test
