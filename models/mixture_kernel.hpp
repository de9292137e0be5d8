#pragma once
// The exact mixture's direct path (models/gaussian_mixture.cpp): cx x + cp score(x) for a run of
// rows in plain loops, blocked so that every inner loop runs over rows and vectorizes. Built with
// -fno-trapping-math (so that the selects of the exponential vectorize) and, on x86-64, in an AVX2
// + FMA clone chosen at run time where the CPU has them.
#include <cstdint>

namespace sdekit::detail {

/// Per-call tables, all float64: U_cat [D, K*D] (each component's eigenvectors side by side),
/// amu [K*D] (alpha times each mean in its eigenbasis), inv_var [K*D] (1 / (alpha^2 s + sigma^2)),
/// norm [K] (log w_k - log det / 2 - D log(2 pi) / 2).
struct MixtureTables {
  const double* U_cat;
  const double* amu;
  const double* inv_var;
  const double* norm;
  int64_t K, D;
};

/// out[i] = cx x[i] + cp score(x[i]) for rows i in [0, rows), x and out row-major [rows, D].
void mixture_rows(const MixtureTables& t, const double* x, double* out, int64_t rows, double cx,
                  double cp);
void mixture_rows(const MixtureTables& t, const float* x, float* out, int64_t rows, double cx,
                  double cp);

/// exp(v[i]) in place for i < n, for v <= 0 (values below -708 give 0; NaN stays NaN); relative
/// error below 3e-16. Exposed for its test.
void exp_nonpositive(double* v, int64_t n);

}  // namespace sdekit::detail
