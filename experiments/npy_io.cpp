#include "experiments/npy_io.hpp"

#include <unistd.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <xtensor/xadapt.hpp>
#include <xtensor/xnpy.hpp>

namespace sdekit {

namespace {

[[noreturn]] void bad(const std::string& path, const std::string& what) {
  throw std::invalid_argument("'" + path + "' is not a valid .npy file: " + what);
}

// A header field as an error message may show it: printable characters only, at most 40.
std::string printable(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 40)) out += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
  return s.size() > 40 ? out + "..." : out;
}

// The value of 'key' in numpy's header dict, e.g. {'descr': '<f8', 'fortran_order': False,
// 'shape': (3, 2), }: the text after "'key':" up to the next top-level ',' or '}'.
std::string header_value(const std::string& header, const std::string& key,
                         const std::string& prefix) {
  auto bad = [&](const std::string& m) { throw std::invalid_argument(prefix + ": " + m); };
  const std::string tag = "'" + key + "'";
  const std::size_t k = header.find(tag);
  if (k == std::string::npos) bad("the header has no " + tag);
  std::size_t i = header.find(':', k + tag.size());
  if (i == std::string::npos) bad("the header's " + tag + " has no value");
  ++i;
  while (i < header.size() && header[i] == ' ') ++i;
  std::size_t j = i;
  int depth = 0;
  for (; j < header.size(); ++j) {
    const char c = header[j];
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
    if (depth < 0) break;
  }
  if (j >= header.size() || depth != 0) bad("the header's " + tag + " is malformed");
  return header.substr(i, j - i + (header[j] == ')' ? 1 : 0));
}

}  // namespace

NpyHeader parse_npy_header(const std::string& dict, uint64_t limit, const std::string& prefix) {
  auto bad = [&](const std::string& m) { throw std::invalid_argument(prefix + ": " + m); };
  NpyHeader h;
  h.descr = header_value(dict, "descr", prefix);
  if (h.descr.size() >= 2 && (h.descr.front() == '\'' || h.descr.front() == '"'))
    h.descr = h.descr.substr(1, h.descr.size() - 2);
  const std::string fortran = header_value(dict, "fortran_order", prefix);
  if (fortran != "True" && fortran != "False")
    bad("fortran_order must be True or False, got " + printable(fortran));
  h.fortran_order = fortran == "True";
  const std::string shape_text = header_value(dict, "shape", prefix);
  if (shape_text.size() < 2 || shape_text.front() != '(' || shape_text.back() != ')')
    bad("the shape must be a tuple, got " + printable(shape_text));
  std::size_t i = 1;
  const std::size_t end = shape_text.size() - 1;  // the closing ')'
  while (i < end) {
    while (i < end && (shape_text[i] == ' ' || shape_text[i] == ',')) ++i;
    if (i >= end) break;
    if (!std::isdigit(static_cast<unsigned char>(shape_text[i])))
      bad("the shape must hold non-negative integers, got " + printable(shape_text));
    uint64_t v = 0;
    for (; i < end && std::isdigit(static_cast<unsigned char>(shape_text[i])); ++i) {
      if (v > (uint64_t(1) << 62) / 10) bad("the shape " + printable(shape_text) + " is too large");
      v = v * 10 + static_cast<uint64_t>(shape_text[i] - '0');
    }
    h.shape.push_back(static_cast<int64_t>(v));
    if (h.shape.size() > 32)
      bad("the shape " + printable(shape_text) + " has more than 32 dimensions");
    h.count = (v != 0 && h.count > (limit + 1) / v) ? limit + 1 : h.count * v;
  }
  return h;
}

// numpy's format 1.0-3.0: magic "\x93NUMPY", version, header length (2 bytes, or 4 from 2.0),
// a Python dict literal, then the raw data. Every size is checked against the file's length
// before anything is allocated.
at::Tensor read_npy(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw std::invalid_argument("cannot read .npy file '" + path + "': it is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("cannot open .npy file '" + path + "'");
  in.seekg(0, std::ios::end);
  const std::streamoff file_size = in.tellg();
  in.seekg(0);
  char pre[8];
  if (!in.read(pre, 8) || std::memcmp(pre, "\x93NUMPY", 6) != 0) bad(path, "no .npy magic string");
  const int major = static_cast<unsigned char>(pre[6]);
  if (major < 1 || major > 3) bad(path, "unknown format version " + std::to_string(major));
  uint64_t header_len = 0;
  unsigned char len[4] = {0, 0, 0, 0};
  if (!in.read(reinterpret_cast<char*>(len), major == 1 ? 2 : 4)) bad(path, "truncated header");
  header_len =
      len[0] | (uint64_t(len[1]) << 8) | (uint64_t(len[2]) << 16) | (uint64_t(len[3]) << 24);
  const std::streamoff data_start =
      8 + (major == 1 ? 2 : 4) + static_cast<std::streamoff>(header_len);
  if (data_start > file_size) bad(path, "the header is longer than the file");
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  // numpy ends the header with a newline; without it the header length is off and the data
  // would be read shifted.
  if (header.empty() || header.back() != '\n')
    bad(path, "the header does not end with a newline (its length field is wrong)");

  const uint64_t data_bytes = static_cast<uint64_t>(file_size - data_start);
  const NpyHeader h =
      parse_npy_header(header, data_bytes, "'" + path + "' is not a valid .npy file");
  at::ScalarType dtype;
  if (h.descr == "<f8") {
    dtype = at::kDouble;
  } else if (h.descr == "<f4") {
    dtype = at::kFloat;
  } else {
    throw std::invalid_argument("'" + path +
                                "': expected dtype float32 or float64 ('<f4' or '<f8'), got '" +
                                printable(h.descr) + "'");
  }
  if (h.fortran_order)
    throw std::invalid_argument("'" + path +
                                "': Fortran-ordered arrays are not supported; save with "
                                "numpy.ascontiguousarray");
  const std::vector<int64_t>& shape = h.shape;
  const uint64_t count = h.count, item = dtype == at::kDouble ? 8 : 4;
  std::ostringstream shape_os;
  shape_os << at::IntArrayRef(shape);
  const std::string shape_text = shape_os.str();
  if (count > std::numeric_limits<uint64_t>::max() / item || count * item > data_bytes)
    throw std::invalid_argument(
        "'" + path + "' is truncated: the header's shape " + shape_text + " needs " +
        (count > data_bytes ? std::string("more") : std::to_string(count * item)) +
        " bytes of data, the file holds " + std::to_string(data_bytes));
  if (count * item != data_bytes)
    bad(path, "the header's shape " + shape_text + " needs " + std::to_string(count * item) +
                  " bytes of data, the file holds " + std::to_string(data_bytes) +
                  " (extra bytes: a wrong dtype or shape)");
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(dtype));
  if (count > 0 &&
      !in.read(static_cast<char*>(out.data_ptr()), static_cast<std::streamsize>(count * item)))
    throw std::invalid_argument("'" + path + "': read failed");
  return out;
}

void require_finite(const at::Tensor& x, const std::string& what) {
  if (x.numel() == 0 || at::isfinite(x).all().item<bool>()) return;
  const at::Tensor rows = x.dim() == 0 ? x.reshape({1, 1}) : x.reshape({x.size(0), -1});
  const at::Tensor bad_rows = (~at::isfinite(rows)).any(1).nonzero();
  const int64_t r = bad_rows[0][0].item<int64_t>();
  const at::Tensor row = rows[r];
  const double v = row.index({~at::isfinite(row)})[0].item<double>();
  throw std::invalid_argument(what + ": row " + std::to_string(r) + " holds a non-finite value (" +
                              std::to_string(v) + ")");
}

void write_npy(const std::string& path, const at::Tensor& x) {
  const at::Tensor c = x.detach().to(at::kCPU).contiguous();
  std::vector<size_t> shape(c.sizes().begin(), c.sizes().end());
  if (c.scalar_type() != at::kDouble && c.scalar_type() != at::kFloat)
    throw std::invalid_argument("write_npy: only float32 and float64 tensors are written");
  // Written next to the target and renamed over it: an interrupted write never leaves a
  // partial file under the final name.
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  try {
    if (c.scalar_type() == at::kDouble)
      xt::dump_npy(tmp, xt::adapt(c.data_ptr<double>(), static_cast<size_t>(c.numel()),
                                  xt::no_ownership(), shape));
    else
      xt::dump_npy(tmp, xt::adapt(c.data_ptr<float>(), static_cast<size_t>(c.numel()),
                                  xt::no_ownership(), shape));
  } catch (const std::runtime_error& e) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error("cannot write .npy file '" + path + "': " + e.what());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error("cannot write .npy file '" + path + "': rename failed");
  }
}

}  // namespace sdekit
