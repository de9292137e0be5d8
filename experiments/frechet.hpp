#pragma once
// Frechet distance between Gaussians fitted to feature sets (docs/theory.md section 6):
//   FD = ||m1 - m2||^2 + Tr(C1 + C2 - 2 (C1 C2)^{1/2}).
// FID is this in Inception-v3 pool features; here the caller chooses the features.
#include <ATen/ATen.h>

#include <cstdint>

namespace sdekit {

/// Mergeable first and second moments of a feature set, accumulated in float64 on the CPU.
/// Holds the count n, the mean and the centered sum of outer products
/// M2 = sum_i (x_i - mean)(x_i - mean)^T, updated with the pairwise formulas of Chan, Golub and
/// LeVeque (1979): for parts A and B with delta = mean_B - mean_A and n = n_A + n_B,
///   mean = mean_A + delta n_B / n,   M2 = M2_A + M2_B + delta delta^T n_A n_B / n.
/// Batches can therefore be added in any order or sharded and merged, with the same result up to
/// rounding.
struct GaussianStats {
  int64_t count = 0;
  at::Tensor mu;  // [d] float64 (undefined while count == 0)
  at::Tensor m2;  // [d, d] float64 centered sum of outer products (undefined while count == 0)

  /// Feature dimension d; 0 while empty.
  int64_t dim() const;
  /// Adds a batch of features [n, d] (any floating dtype or device; copied to float64 CPU).
  /// Throws std::invalid_argument for a non-2-D or non-floating batch, a dimension that differs
  /// from earlier batches, or non-finite values. An empty batch (n = 0) is a no-op.
  GaussianStats& add(const at::Tensor& features);
  /// Folds in another accumulator (Chan et al. pairwise merge, exact in exact arithmetic).
  GaussianStats& merge(const GaussianStats& other);
  /// Sample mean [d], float64. Throws std::invalid_argument when empty.
  at::Tensor mean() const;
  /// Unbiased sample covariance M2 / (n - 1) [d, d], float64. Throws when n < 2.
  at::Tensor covariance() const;
};

/// ||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^{1/2}), computed with symmetric eigendecompositions:
/// S1 = C1^{1/2} (eigenvalues clamped at 0), then Tr((C1 C2)^{1/2}) = Tr((S1 C2 S1)^{1/2}) is the
/// sum of square roots of the (clamped) eigenvalues of the symmetric matrix S1 C2 S1, since
/// C1 C2 = S1 (S1 C2 S1) S1^{-1} is similar to it. The covariances are symmetrized first.
/// mu: [d]; C: [d, d]; any floating dtype/device. Throws std::invalid_argument on mismatched or
/// non-square shapes and non-finite entries. The result is clamped at 0 against rounding.
double frechet_distance(const at::Tensor& mu1, const at::Tensor& C1, const at::Tensor& mu2,
                        const at::Tensor& C2);

/// Frechet distance between the Gaussians of two accumulators (mean, unbiased covariance).
double frechet_distance(const GaussianStats& a, const GaussianStats& b);

}  // namespace sdekit
