#pragma once
// .npy files in and out (numpy's format): read by our own checked parser, written through
// xtensor's public writer (xt::dump_npy).
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sdekit {

/// Reads a little-endian float32 or float64 C-order .npy file into a CPU tensor of that dtype.
/// Errors (std::invalid_argument) name the file and what was expected vs found: missing file,
/// not a .npy file, other dtypes, Fortran order, truncated data.
at::Tensor read_npy(const std::string& path);
/// Writes a float32 or float64 tensor (any device, any shape) as a C-order .npy file, through a
/// temporary file renamed over `path` (an interrupted write leaves no partial file).
void write_npy(const std::string& path, const at::Tensor& x);

/// The fields of a .npy header dict ("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2),
/// }"), parsed without trusting it: `count`, the product of the shape, saturates at limit + 1,
/// so a header cannot announce more data than `limit` values without the caller seeing it.
/// Throws std::invalid_argument(prefix + ": ...") for a missing or malformed field.
struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
  uint64_t count = 1;
};
NpyHeader parse_npy_header(const std::string& dict, uint64_t limit, const std::string& prefix);

/// Throws std::invalid_argument("WHAT: row R holds a non-finite value (V)") naming the first row
/// [n, ...] of x that is not finite.
void require_finite(const at::Tensor& x, const std::string& what);

}  // namespace sdekit
