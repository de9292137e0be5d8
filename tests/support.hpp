#pragma once
// Helpers shared by the sampler tests: least-squares orders, RMS errors, moment checks.
#include <ATen/ATen.h>

#include <cmath>
#include <vector>

namespace sdekit::test {

/// Least-squares slope of log(err) against log(nfe), negated: the empirical order.
inline double fitted_order(const std::vector<double>& nfe, const std::vector<double>& err) {
  double mx = 0, my = 0;
  const double n = static_cast<double>(nfe.size());
  for (size_t i = 0; i < nfe.size(); ++i) {
    mx += std::log(nfe[i]) / n;
    my += std::log(err[i]) / n;
  }
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < nfe.size(); ++i) {
    const double dx = std::log(nfe[i]) - mx;
    sxy += dx * (std::log(err[i]) - my);
    sxx += dx * dx;
  }
  return -sxy / sxx;
}

/// Root mean square over all entries.
inline double rms(const at::Tensor& a) {
  return a.pow(2).mean().sqrt().item<double>();
}

}  // namespace sdekit::test
