#include "models/mixture_kernel.hpp"

#include <algorithm>
#include <vector>

namespace sdekit::detail {

namespace {

// The kernels are inlined into two callers: one built for the baseline instruction set and, on
// x86-64 with GCC or Clang, one built for AVX2 + FMA, chosen at run time by what the CPU has.
#if defined(__x86_64__) && defined(__GNUC__)
#define SDEKIT_AVX2 1
#define SDEKIT_INLINE inline __attribute__((always_inline))
#else
#define SDEKIT_AVX2 0
#define SDEKIT_INLINE inline
#endif

// Rows per block: the block's values are stored coordinate-major ([j][b]).
constexpr int64_t kBlock = 32;

// exp(v) for v <= 0 (docs/theory.md, section "Exact Gaussian mixtures"): v = n ln2 + r with
// n = round(v / ln2) and |r| <= ln2 / 2; ln2 is split in a high part with trailing zero bits and
// a low part, so that n ln2_hi is exact; exp(r) is its Taylor series to degree 13 (truncation
// below 5e-18 relative), and 2^n goes into the exponent bits. Below -708 the result is 0 (where
// exp underflows anyway); NaN stays NaN (the selects compare false on it).
// N > 0: a block of N values (a constant trip count); N = 0: n values.
template <int64_t N>
SDEKIT_INLINE void exp_fixed(double* __restrict v, int64_t n = N) {
  const int64_t len = N > 0 ? N : n;
  constexpr double kLog2e = 1.4426950408889634074, kLn2Hi = 6.93147180369123816490e-01,
                   kLn2Lo = 1.90821492927058770002e-10, kRound = 0x1.8p52, kMin = -708.0;
  constexpr int64_t kRoundBits = 0x4338000000000000;  // the bits of kRound
  for (int64_t b = 0; b < len; ++b) {
    const double x = v[b] < kMin ? kMin : v[b];
    const double t = x * kLog2e + kRound;  // rounds to nearest: n is in t's low mantissa bits
    const double m = t - kRound;
    const double r = (x - m * kLn2Hi) - m * kLn2Lo;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    const int64_t scale_bits = (__builtin_bit_cast(int64_t, t) - kRoundBits + 1023) << 52;
    const double y = p * __builtin_bit_cast(double, scale_bits);
    v[b] = v[b] < kMin ? 0.0 : y;
  }
}
SDEKIT_INLINE void exp_block(double* __restrict v) {
  exp_fixed<kBlock>(v);
}
SDEKIT_INLINE void exp_short(double* __restrict v, int64_t n) {
  exp_fixed<0>(v, n);
}

// The per-thread block buffers.
struct Scratch {
  std::vector<double> xs, y, lj, acc;
  void size(int64_t K, int64_t D) {
    xs.resize(static_cast<size_t>(D * kBlock));
    y.resize(static_cast<size_t>(K * D * kBlock));
    lj.resize(static_cast<size_t>((K + 2) * kBlock));  // l [K][b], top [b], total [b]
    acc.resize(static_cast<size_t>(std::max<int64_t>(D, 2) * kBlock));  // sc [D][b] or sc, ak
  }
};

// One block of kBlock rows (section "Exact Gaussian mixtures"): y_k = U_k^T x - alpha mu_k,
// z_k = y_k / var_k, log-joint l_k = norm_k - y_k . z_k / 2, responsibilities r = softmax(l),
// score = -sum_k r_k U_k z_k.
template <class T>
SDEKIT_INLINE void block(const MixtureTables& t, const T* __restrict x, T* __restrict out,
                         double cx, double cp, Scratch& s) {
  constexpr int64_t nb = kBlock;
  const int64_t K = t.K, D = t.D, KD = K * D;
  double* __restrict xs = s.xs.data();
  double* __restrict y = s.y.data();
  double* __restrict lj = s.lj.data();
  double* __restrict top = lj + K * kBlock;
  double* __restrict total = top + kBlock;
  double* __restrict sc = s.acc.data();
  double* __restrict ak = sc + kBlock;
  for (int64_t d = 0; d < D; ++d)
    for (int64_t b = 0; b < nb; ++b) xs[d * kBlock + b] = static_cast<double>(x[b * D + d]);
  for (int64_t j = 0; j < KD; ++j) {
    double* __restrict yj = y + j * kBlock;
    const double m = t.amu[j];
    for (int64_t b = 0; b < nb; ++b) yj[b] = -m;
    for (int64_t d = 0; d < D; ++d) {
      const double u = t.U_cat[d * KD + j];
      const double* __restrict xd = xs + d * kBlock;
      for (int64_t b = 0; b < nb; ++b) yj[b] += u * xd[b];
    }
  }
  for (int64_t b = 0; b < nb; ++b) top[b] = -1.0 / 0.0;
  for (int64_t k = 0; k < K; ++k) {
    double* __restrict l = lj + k * kBlock;
    for (int64_t b = 0; b < nb; ++b) l[b] = 0.0;
    for (int64_t e = 0; e < D; ++e) {
      double* __restrict yj = y + (k * D + e) * kBlock;
      const double iv = t.inv_var[k * D + e];
      for (int64_t b = 0; b < nb; ++b) {
        const double z = yj[b] * iv;
        l[b] += yj[b] * z;
        yj[b] = z;
      }
    }
    const double nk = t.norm[k];
    for (int64_t b = 0; b < nb; ++b) {
      l[b] = nk - 0.5 * l[b];
      top[b] = l[b] > top[b] ? l[b] : top[b];
    }
  }
  for (int64_t b = 0; b < nb; ++b) total[b] = 0.0;
  for (int64_t k = 0; k < K; ++k) {
    double* __restrict l = lj + k * kBlock;
    for (int64_t b = 0; b < nb; ++b) l[b] -= top[b];
    exp_block(l);
    for (int64_t b = 0; b < nb; ++b) total[b] += l[b];
  }
  for (int64_t b = 0; b < nb; ++b) total[b] = 1.0 / total[b];
  for (int64_t d = 0; d < D; ++d) {
    const double* __restrict u = t.U_cat + d * KD;
    for (int64_t b = 0; b < nb; ++b) sc[b] = 0.0;
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t b = 0; b < nb; ++b) ak[b] = 0.0;
      for (int64_t e = 0; e < D; ++e) {
        const double ue = u[k * D + e];
        const double* __restrict zj = y + (k * D + e) * kBlock;
        for (int64_t b = 0; b < nb; ++b) ak[b] += ue * zj[b];
      }
      const double* __restrict l = lj + k * kBlock;
      for (int64_t b = 0; b < nb; ++b) sc[b] += l[b] * ak[b];
    }
    const double* __restrict xd = xs + d * kBlock;
    for (int64_t b = 0; b < nb; ++b)
      out[b * D + d] = static_cast<T>(cx * xd[b] - cp * (sc[b] * total[b]));
  }
}

// The same block for a dimension D known at compile time (1 to 4): per component, one pass over
// the rows computes y, z and the log-joint in registers; a second pass accumulates the score.
template <class T, int64_t D>
SDEKIT_INLINE void block_fixed(const MixtureTables& t, const T* __restrict x, T* __restrict out,
                               double cx, double cp, Scratch& s) {
  constexpr int64_t nb = kBlock;
  const int64_t K = t.K, KD = K * D;
  double* __restrict xs = s.xs.data();
  double* __restrict z = s.y.data();  // [K][D][b]
  double* __restrict lj = s.lj.data();
  double* __restrict top = lj + K * kBlock;
  double* __restrict total = top + kBlock;
  double* __restrict sc = s.acc.data();  // [D][b]
  for (int64_t d = 0; d < D; ++d)
    for (int64_t b = 0; b < nb; ++b) xs[d * kBlock + b] = static_cast<double>(x[b * D + d]);
  for (int64_t b = 0; b < nb; ++b) top[b] = -1.0 / 0.0;
  for (int64_t k = 0; k < K; ++k) {
    double u[D][D], m[D], iv[D];
    for (int64_t e = 0; e < D; ++e) {
      m[e] = t.amu[k * D + e];
      iv[e] = t.inv_var[k * D + e];
      for (int64_t d = 0; d < D; ++d) u[d][e] = t.U_cat[d * KD + k * D + e];
    }
    const double nk = t.norm[k];
    double* __restrict l = lj + k * kBlock;
    double* __restrict zk = z + k * D * kBlock;
    for (int64_t b = 0; b < nb; ++b) {
      double q = 0.0;
      for (int64_t e = 0; e < D; ++e) {
        double y = -m[e];
        for (int64_t d = 0; d < D; ++d) y += u[d][e] * xs[d * kBlock + b];
        const double ze = y * iv[e];
        q += y * ze;
        zk[e * kBlock + b] = ze;
      }
      l[b] = nk - 0.5 * q;
      top[b] = l[b] > top[b] ? l[b] : top[b];
    }
  }
  for (int64_t b = 0; b < nb; ++b) total[b] = 0.0;
  for (int64_t i = 0; i < D * nb; ++i) sc[i] = 0.0;
  for (int64_t k = 0; k < K; ++k) {
    double* __restrict l = lj + k * kBlock;
    for (int64_t b = 0; b < nb; ++b) l[b] -= top[b];
    exp_block(l);
    double u[D][D];
    for (int64_t d = 0; d < D; ++d)
      for (int64_t e = 0; e < D; ++e) u[d][e] = t.U_cat[d * KD + k * D + e];
    const double* __restrict zk = z + k * D * kBlock;
    for (int64_t b = 0; b < nb; ++b) {
      total[b] += l[b];
      for (int64_t d = 0; d < D; ++d) {
        double acc = 0.0;
        for (int64_t e = 0; e < D; ++e) acc += u[d][e] * zk[e * kBlock + b];
        sc[d * kBlock + b] += l[b] * acc;
      }
    }
  }
  for (int64_t b = 0; b < nb; ++b) {
    const double inv = 1.0 / total[b];
    for (int64_t d = 0; d < D; ++d)
      out[b * D + d] = static_cast<T>(cx * xs[d * kBlock + b] - cp * (sc[d * kBlock + b] * inv));
  }
}

// One block of kBlock rows through the kernel for its dimension.
template <class T>
SDEKIT_INLINE void any_block(const MixtureTables& t, const T* x, T* out, double cx, double cp,
                             Scratch& s) {
  switch (t.D) {
    case 1:
      block_fixed<T, 1>(t, x, out, cx, cp, s);
      break;
    case 2:
      block_fixed<T, 2>(t, x, out, cx, cp, s);
      break;
    case 3:
      block_fixed<T, 3>(t, x, out, cx, cp, s);
      break;
    case 4:
      block_fixed<T, 4>(t, x, out, cx, cp, s);
      break;
    default:
      block(t, x, out, cx, cp, s);
  }
}

// Every row goes through the block kernel, whose lanes all run the same instructions: the rows
// that do not fill a block are copied into a block padded with copies of the last row. So a
// row's score does not depend on the batch it comes in, nor on where the batch is cut
// (docs/theory.md section 10.1).
template <class T>
SDEKIT_INLINE void rows_impl(const MixtureTables& t, const T* x, T* out, int64_t rows, double cx,
                             double cp) {
  thread_local Scratch s;
  s.size(t.K, t.D);
  const int64_t D = t.D;
  int64_t i = 0;
  for (; i + kBlock <= rows; i += kBlock) any_block(t, x + i * D, out + i * D, cx, cp, s);
  if (i == rows) return;
  thread_local std::vector<T> xin, xout;
  xin.resize(static_cast<size_t>(kBlock * D));
  xout.resize(static_cast<size_t>(kBlock * D));
  const int64_t left = rows - i;
  std::copy(x + i * D, x + rows * D, xin.begin());
  for (int64_t b = left; b < kBlock; ++b)
    std::copy(x + (rows - 1) * D, x + rows * D, xin.begin() + b * D);
  any_block(t, xin.data(), xout.data(), cx, cp, s);
  std::copy(xout.begin(), xout.begin() + left * D, out + i * D);
}

SDEKIT_INLINE void exp_rows(double* v, int64_t n) {
  int64_t i = 0;
  for (; i + kBlock <= n; i += kBlock) exp_block(v + i);
  exp_short(v + i, n - i);
}

template <class T>
void rows_base(const MixtureTables& t, const T* x, T* out, int64_t rows, double cx, double cp) {
  rows_impl(t, x, out, rows, cx, cp);
}
void exp_base(double* v, int64_t n) {
  exp_rows(v, n);
}

#if SDEKIT_AVX2
template <class T>
__attribute__((target("avx2,fma"))) void rows_avx2(const MixtureTables& t, const T* x, T* out,
                                                   int64_t rows, double cx, double cp) {
  rows_impl(t, x, out, rows, cx, cp);
}
__attribute__((target("avx2,fma"))) void exp_avx2(double* v, int64_t n) {
  exp_rows(v, n);
}
const bool kHasAvx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
constexpr bool kHasAvx2 = false;
template <class T>
void rows_avx2(const MixtureTables& t, const T* x, T* out, int64_t rows, double cx, double cp) {
  rows_impl(t, x, out, rows, cx, cp);
}
void exp_avx2(double* v, int64_t n) {
  exp_rows(v, n);
}
#endif

}  // namespace

void mixture_rows(const MixtureTables& t, const double* x, double* out, int64_t rows, double cx,
                  double cp) {
  kHasAvx2 ? rows_avx2(t, x, out, rows, cx, cp) : rows_base(t, x, out, rows, cx, cp);
}
void mixture_rows(const MixtureTables& t, const float* x, float* out, int64_t rows, double cx,
                  double cp) {
  kHasAvx2 ? rows_avx2(t, x, out, rows, cx, cp) : rows_base(t, x, out, rows, cx, cp);
}
void exp_nonpositive(double* v, int64_t n) {
  kHasAvx2 ? exp_avx2(v, n) : exp_base(v, n);
}

}  // namespace sdekit::detail
