#pragma once
// Empirical order of convergence: least-squares fit of log e = c - p log NFE (docs/theory.md
// section 6), with the standard error of p, over a range of points given or chosen automatically.
#include <cstddef>
#include <vector>

namespace sdekit {

struct OrderFit {
  double order = 0.0;      // p: minus the slope of log(error) against log(NFE)
  double std_error = 0.0;  // standard error of p from the residuals (n - 2 degrees of freedom)
  double intercept = 0.0;  // c
  std::size_t first = 0;   // the range of points used, inclusive
  std::size_t last = 0;
  std::size_t points() const { return last - first + 1; }
};

/// Fit over points first..last (inclusive, at least 2). Throws std::invalid_argument for
/// mismatched sizes, a bad range, or non-positive / non-finite NFE or errors in it.
OrderFit fit_order(const std::vector<double>& nfe, const std::vector<double>& err,
                   std::size_t first, std::size_t last);

/// Fit over the asymptotic range, chosen automatically: points (sorted by NFE) whose error is
/// within 10x of `floor` (the reference's own error; 0: none) are dropped from the high end; then
/// the range starts at the smallest NFE for which every local slope between neighbouring points
/// lies within `tolerance` of the fitted order, keeping at least 3 points (2 if only 2 remain).
OrderFit fit_order_auto(const std::vector<double>& nfe, const std::vector<double>& err,
                        double floor = 0.0, double tolerance = 0.3);

}  // namespace sdekit
