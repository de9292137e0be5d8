#include "solvers/row_noise.hpp"

#include <ATen/Parallel.h>
#include <ATen/core/PhiloxRNGEngine.h>

#include <cmath>
#include <stdexcept>
#include <vector>

namespace sdekit {

RngKind parse_rng(const std::string& name, const std::string& flag) {
  if (name == "rows") return RngKind::Rows;
  if (name == "generator") return RngKind::Generator;
  throw std::invalid_argument(flag + ": expected rows | generator, got '" + name + "'");
}

std::string rng_name(RngKind kind) {
  return kind == RngKind::Rows ? "rows" : "generator";
}

namespace {
// A uniform in [0, 1) with 53 random bits from two 32-bit words.
inline double uniform53(uint32_t a, uint32_t b) {
  return (static_cast<double>(a >> 5) * 67108864.0 + static_cast<double>(b >> 6)) *
         (1.0 / 9007199254740992.0);
}

// m normals of the stream (seed, row, draw) into dst: Box-Muller on pairs of uniforms, one
// Philox block (four words) per pair (docs/theory.md section 10.1).
void row_stream(double* dst, int64_t m, uint64_t seed, uint64_t row, uint64_t draw) {
  at::philox_engine eng(seed, row, draw << 32);
  constexpr double two_pi = 6.283185307179586476925286766559;
  for (int64_t j = 0; j < m; j += 2) {
    const uint32_t a = eng(), b = eng(), c = eng(), d = eng();
    const double u1 = 1.0 - uniform53(a, b);  // (0, 1]: log(u1) is finite
    const double u2 = uniform53(c, d);
    const double r = std::sqrt(-2.0 * std::log(u1));
    dst[j] = r * std::cos(two_pi * u2);
    if (j + 1 < m) dst[j + 1] = r * std::sin(two_pi * u2);
  }
}
}  // namespace

void row_normal_into(at::Tensor& out, uint64_t seed, int64_t first_row, uint64_t draw) {
  if (out.dim() < 1) throw std::invalid_argument("row_normal_into: needs a tensor [n, ...]");
  if (first_row < 0)
    throw std::invalid_argument("row_normal_into: first_row must be >= 0, got " +
                                std::to_string(first_row));
  const int64_t n = out.size(0);
  if (n == 0) return;
  const int64_t m = out.numel() / n;
  const bool direct =
      out.scalar_type() == at::kDouble && out.device().is_cpu() && out.is_contiguous();
  at::Tensor buf = direct ? out : at::empty({n, m}, at::kDouble);
  double* p = buf.data_ptr<double>();
  at::parallel_for(0, n, 1 + 4096 / std::max<int64_t>(m, 1), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r)
      row_stream(p + r * m, m, seed, static_cast<uint64_t>(first_row + r), draw);
  });
  if (!direct) out.copy_(buf.view(out.sizes()));
}

at::Tensor row_normal(at::IntArrayRef shape, at::TensorOptions options, uint64_t seed,
                      int64_t first_row, uint64_t draw) {
  at::Tensor out = at::empty(shape, options);
  row_normal_into(out, seed, first_row, draw);
  return out;
}

}  // namespace sdekit
