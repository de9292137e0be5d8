#include "experiments/kid.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace sdekit {

namespace {

at::Tensor checked_features(const at::Tensor& t, const char* name) {
  if (!t.defined() || t.dim() != 2)
    throw std::invalid_argument(
        std::string("kernel_inception_distance: expected ") + name + " of shape [n, d], got " +
        (t.defined() ? std::to_string(t.dim()) + "-D tensor" : "undefined"));
  if (!at::isFloatingType(t.scalar_type()))
    throw std::invalid_argument(std::string("kernel_inception_distance: expected ") + name +
                                " with a floating dtype, got " +
                                std::string(c10::toString(t.scalar_type())));
  const at::Tensor d = t.to(at::kCPU, at::kDouble).contiguous();
  if (!at::isfinite(d).all().item<bool>())
    throw std::invalid_argument(std::string("kernel_inception_distance: ") + name +
                                " contains non-finite values");
  return d;
}

// Binkowski et al. (2018): cubic polynomial kernel k(a, b) = (a . b / d + 1)^3, rows against rows.
at::Tensor poly_kernel(const at::Tensor& a, const at::Tensor& b) {
  const double d = static_cast<double>(a.size(1));
  return (at::matmul(a, b.transpose(0, 1)) / d + 1.0).pow(3);
}

// Unbiased MMD^2 for equal-size samples: off-diagonal means of K_xx and K_yy minus twice the
// mean of K_xy.
double mmd2_unbiased(const at::Tensor& x, const at::Tensor& y) {
  const double m = static_cast<double>(x.size(0));
  const at::Tensor kxx = poly_kernel(x, x), kyy = poly_kernel(y, y), kxy = poly_kernel(x, y);
  const double sxx = (kxx.sum() - kxx.diagonal().sum()).item<double>();
  const double syy = (kyy.sum() - kyy.diagonal().sum()).item<double>();
  const double sxy = kxy.sum().item<double>();
  return (sxx + syy) / (m * (m - 1.0)) - 2.0 * sxy / (m * m);
}

}  // namespace

KidResult kernel_inception_distance(const at::Tensor& x, const at::Tensor& y, int subsets,
                                    int64_t subset_size, uint64_t seed) {
  const at::Tensor xd = checked_features(x, "x");
  const at::Tensor yd = checked_features(y, "y");
  if (xd.size(1) != yd.size(1))
    throw std::invalid_argument("kernel_inception_distance: feature dimensions differ: x has " +
                                std::to_string(xd.size(1)) + ", y has " +
                                std::to_string(yd.size(1)));
  if (subsets < 1)
    throw std::invalid_argument("kernel_inception_distance: expected subsets >= 1, got " +
                                std::to_string(subsets));
  if (subset_size < 2)
    throw std::invalid_argument("kernel_inception_distance: expected subset_size >= 2, got " +
                                std::to_string(subset_size));
  const int64_t limit = std::min(xd.size(0), yd.size(0));
  if (subset_size > limit)
    throw std::invalid_argument(
        "kernel_inception_distance: expected subset_size <= min(n_x, n_y) = " +
        std::to_string(limit) + ", got " + std::to_string(subset_size));

  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto idx_opts = at::TensorOptions().dtype(at::kLong);
  std::vector<double> values(static_cast<size_t>(subsets));
  for (int s = 0; s < subsets; ++s) {
    const at::Tensor ix = at::randperm(xd.size(0), gen, idx_opts).slice(0, 0, subset_size);
    const at::Tensor iy = at::randperm(yd.size(0), gen, idx_opts).slice(0, 0, subset_size);
    values[static_cast<size_t>(s)] = mmd2_unbiased(xd.index_select(0, ix), yd.index_select(0, iy));
  }

  double mean = 0;
  for (double v : values) mean += v / subsets;
  double var = 0;
  if (subsets > 1) {
    for (double v : values) var += (v - mean) * (v - mean);
    var /= (subsets - 1);
  }
  KidResult r;
  r.mean = mean;
  r.std_error = std::sqrt(var / subsets);
  r.subsets = subsets;
  r.subset_size = subset_size;
  return r;
}

}  // namespace sdekit
