#pragma once
// Helpers shared by the tests of trained networks (training and distillation).
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include "datasets/toy.hpp"
#include "networks/network.hpp"

namespace sdekit::test {

/// Whether two networks hold bit-identical parameters (same count, shapes and values).
inline bool same_parameters(const Network& a, const Network& b) {
  const auto pa = a.parameters(), pb = b.parameters();
  if (pa.size() != pb.size()) return false;
  for (size_t i = 0; i < pa.size(); ++i)
    if (!at::equal(pa[i], pb[i])) return false;
  return true;
}

/// Samples x [n, 2] against the moments of 200000 two-moons draws (mean (0, 0) by construction,
/// variances 3.01 / 0.99, covariance -0.77): mean within 0.1 per coordinate, covariance entries
/// within 0.15 (sampling standard errors about 0.03 and 0.05 at n = 4000).
inline void check_two_moons_moments(const at::Tensor& samples) {
  const at::Tensor x = samples.to(at::kDouble);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(9);
  const at::Tensor data = toy_dataset("two-moons", 200000, g);
  const at::Tensor m = x.mean(0), md = data.mean(0);
  const at::Tensor C = at::cov(x.t()), Cd = at::cov(data.t());
  INFO("sample mean " << m << " data mean " << md << "\nsample cov " << C << " data cov " << Cd);
  CHECK((m - md).abs().max().item<double>() < 0.1);
  CHECK((C - Cd).abs().max().item<double>() < 0.15);
}

}  // namespace sdekit::test
