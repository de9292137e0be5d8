#pragma once
// Kernel Inception Distance (Binkowski, Sutherland, Arbel and Gretton 2018, "Demystifying MMD
// GANs"): the unbiased estimator of the squared MMD with the cubic polynomial kernel
//   k(a, b) = (a . b / d + 1)^3,
// averaged over random subsets of both feature sets, as in the reference KID implementation.
#include <ATen/ATen.h>

#include <cstdint>

namespace sdekit {

struct KidResult {
  double mean = 0;       // average of the per-subset unbiased MMD^2 estimates
  double std_error = 0;  // sample std (n - 1 normalization) of those estimates / sqrt(subsets)
  int subsets = 0;
  int64_t subset_size = 0;
};

/// For each of `subsets` rounds, draws subset_size rows of x and of y without replacement
/// (at::randperm with one at::Generator seeded by `seed`) and evaluates, with m = subset_size,
///   MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
///             - 2 sum_{i, j} k(x_i, y_j) / m^2.
/// x: [n, d], y: [n', d], any floating dtype/device (computed in float64 on the CPU).
/// Throws std::invalid_argument when the inputs are not 2-D floating tensors, the feature
/// dimensions differ, values are non-finite, subsets < 1, subset_size < 2 or
/// subset_size > min(n, n').
KidResult kernel_inception_distance(const at::Tensor& x, const at::Tensor& y, int subsets,
                                    int64_t subset_size, uint64_t seed);

}  // namespace sdekit
