#include "experiments/stats_io.hpp"

#include "experiments/npy_io.hpp"

#include <fcntl.h>
#include <unistd.h>
#if SDEKIT_WITH_LIBZIP
#include <zip.h>
#endif

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <vector>
#include <xtensor/xadapt.hpp>
#include <xtensor/xnpy.hpp>

namespace sdekit {

namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string shape_str(const at::Tensor& t) {
  return shape_str(std::vector<int64_t>(t.sizes().begin(), t.sizes().end()));
}

[[noreturn]] void read_error(const std::string& path, const std::string& what) {
  throw std::invalid_argument("read_stats_npz: '" + path + "': " + what);
}

#if SDEKIT_WITH_LIBZIP
bool host_is_big_endian() {
  const uint16_t probe = 1;
  unsigned char first;
  std::memcpy(&first, &probe, 1);
  return first == 0;
}

// numpy's name for a dtype given by kind character and item size ('f', 4 -> "float32").
std::string dtype_name(char kind, size_t size) {
  const std::string bits = std::to_string(8 * size);
  switch (kind) {
    case 'f':
      return "float" + bits;
    case 'i':
      return "int" + bits;
    case 'u':
      return "uint" + bits;
    case 'c':
      return "complex" + bits;
    case 'b':
      return "bool";
    default:
      return std::string("kind '") + kind + "'";
  }
}

// Owns an open archive; zip_discard releases it without writing anything.
struct ZipDiscard {
  void operator()(zip_t* za) const {
    if (za) zip_discard(za);
  }
};
using ZipHandle = std::unique_ptr<zip_t, ZipDiscard>;

struct ZipFileClose {
  void operator()(zip_file_t* f) const {
    if (f) zip_fclose(f);
  }
};
using ZipFileHandle = std::unique_ptr<zip_file_t, ZipFileClose>;

// The first bytes of a file (fewer when it is shorter; empty when it cannot be read).
std::string file_prefix(const std::string& path, size_t n) {
  std::ifstream in(path, std::ios::binary);
  std::string buf(n, '\0');
  in.read(&buf[0], static_cast<std::streamsize>(n));
  buf.resize(static_cast<size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  return buf;
}

ZipHandle open_archive(const std::string& path) {
  int code = 0;
  zip_t* za = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
  if (za) return ZipHandle(za);
  // zip_error_init_with_code picks up errno for system errors, so it must come first.
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  const std::string reason = zip_error_strerror(&error);
  zip_error_fini(&error);
  if (code == ZIP_ER_NOZIP || code == ZIP_ER_INCONS) {
    const std::string head = file_prefix(path, 6);
    if (head.empty()) read_error(path, "not a zip (.npz) archive: the file is empty");
    if (head.compare(0, 4, "PK\x03\x04") == 0)
      read_error(path, "truncated or damaged zip (.npz) archive (libzip: " + reason + ")");
    if (head == "\x93NUMPY")
      read_error(path, "not a zip (.npz) archive: this is a single .npy array");
    read_error(path, "not a zip (.npz) archive (libzip: " + reason + ")");
  }
  if (code == ZIP_ER_NOENT) read_error(path, std::string("cannot open: ") + std::strerror(ENOENT));
  read_error(path, "cannot open: " + reason);
}

std::vector<std::string> entry_names(zip_t* za) {
  std::vector<std::string> names;
  const zip_int64_t n = zip_get_num_entries(za, 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    const char* name = zip_get_name(za, static_cast<zip_uint64_t>(i), 0);
    if (name) names.emplace_back(name);
  }
  return names;
}

// The keys numpy.load would offer: entry names without the ".npy" suffix.
std::string key_list(const std::vector<std::string>& names) {
  if (names.empty()) return "none (the archive is empty)";
  std::string s;
  for (const std::string& name : names) {
    std::string key = name;
    if (key.size() > 4 && key.compare(key.size() - 4, 4, ".npy") == 0) key.resize(key.size() - 4);
    s += (s.empty() ? "'" : ", '") + key + "'";
  }
  return s;
}

// Index of the entry `key`.npy (or `key` itself), -1 when absent.
zip_int64_t locate(zip_t* za, const std::string& key) {
  const zip_int64_t idx = zip_name_locate(za, (key + ".npy").c_str(), 0);
  return idx >= 0 ? idx : zip_name_locate(za, key.c_str(), 0);
}

std::string read_entry(zip_t* za, zip_int64_t idx, const std::string& path,
                       const std::string& entry) {
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat_index(za, static_cast<zip_uint64_t>(idx), 0, &st) != 0)
    read_error(path, "cannot read entry '" + entry + "': " + zip_strerror(za));
  ZipFileHandle f(zip_fopen_index(za, static_cast<zip_uint64_t>(idx), 0));
  if (!f) read_error(path, "cannot read entry '" + entry + "': " + zip_strerror(za));
  std::string data;
  std::vector<char> buf(1 << 16);
  for (;;) {
    const zip_int64_t got = zip_fread(f.get(), buf.data(), buf.size());
    if (got < 0)
      read_error(path,
                 "entry '" + entry + "' is damaged or truncated: " + zip_file_strerror(f.get()));
    if (got == 0) break;
    data.append(buf.data(), static_cast<size_t>(got));
  }
  if ((st.valid & ZIP_STAT_SIZE) && data.size() != st.size)
    read_error(path, "entry '" + entry + "' is truncated: expected " + std::to_string(st.size) +
                         " bytes, got " + std::to_string(data.size()));
  return data;
}

// One decoded .npy array: its native-endian bytes, dtype, shape and element order.
struct NpyArray {
  char kind = 0;
  size_t item_size = 0;
  std::string descr;
  std::vector<int64_t> shape;
  bool fortran_order = false;
  std::vector<char> bytes;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return n;
  }
  std::string dtype() const { return dtype_name(kind, item_size) + " ('" + descr + "')"; }
};

// Reads a .npy entry (numpy's format 1.0-3.0: magic, version, header length, a Python dict
// literal, the raw data); every size is checked against the entry's bytes before anything is
// allocated, so short or foreign data gets a precise message.
NpyArray parse_npy(const std::string& data, const std::string& path, const std::string& entry) {
  if (data.size() < 10 || data.compare(0, 6, "\x93NUMPY") != 0)
    read_error(path, "entry '" + entry + "' is not a .npy array (no \\x93NUMPY magic string)");
  const auto byte = [&data](size_t i) { return static_cast<unsigned char>(data[i]); };
  const unsigned major = byte(6);
  const size_t len_bytes = major == 1 ? 2 : 4;
  if (major < 1 || major > 3)
    read_error(path, "entry '" + entry + "' has a bad .npy header: unsupported format version " +
                         std::to_string(major) + "." + std::to_string(byte(7)));
  if (data.size() < 8 + len_bytes)
    read_error(path, "entry '" + entry + "' is truncated inside its .npy header");
  size_t header_len = 0;
  for (size_t i = 0; i < len_bytes; ++i) header_len |= static_cast<size_t>(byte(8 + i)) << (8 * i);
  if (data.size() < 8 + len_bytes + header_len)
    read_error(path, "entry '" + entry + "' is truncated inside its .npy header (" +
                         std::to_string(header_len) + " header bytes announced, " +
                         std::to_string(data.size() - 8 - len_bytes) + " present)");
  const size_t start = 8 + len_bytes + header_len;
  const NpyHeader h = parse_npy_header(
      data.substr(8 + len_bytes, header_len), data.size(),
      "read_stats_npz: '" + path + "': entry '" + entry + "' has a bad .npy header");
  uint64_t item = 0;  // the descr's byte count, e.g. '<f8' -> 8
  for (size_t i = 2; i < h.descr.size() && std::isdigit(static_cast<unsigned char>(h.descr[i]));
       ++i)
    item = item * 10 + static_cast<uint64_t>(h.descr[i] - '0');
  if (item == 0 || item > 16 || std::string("<>|=").find(h.descr[0]) == std::string::npos)
    read_error(path, "entry '" + entry + "' has an unsupported dtype '" +
                         h.descr.substr(0, h.descr.find_first_of("\n\r")) + "'");
  if (h.count > (data.size() - start) / item)
    read_error(path, "entry '" + entry + "' is truncated: its .npy header's shape needs more " +
                         "data than the entry's " + std::to_string(data.size() - start) + " bytes");
  NpyArray a;
  a.descr = h.descr;
  a.kind = h.descr[1];
  a.item_size = static_cast<size_t>(item);
  a.fortran_order = h.fortran_order;
  int64_t numel = 1;
  for (int64_t s : h.shape) {
    if (s > 0 && numel > std::numeric_limits<int64_t>::max() / s)
      read_error(path, "entry '" + entry + "' has a bad .npy header: the shape is too large");
    numel *= s;
  }
  a.shape = h.shape;
  a.bytes.assign(data.begin() + static_cast<std::ptrdiff_t>(start),
                 data.begin() + static_cast<std::ptrdiff_t>(start + h.count * item));
  const char order = a.descr[0];
  const bool swap = a.item_size > 1 && ((order == '>' && !host_is_big_endian()) ||
                                        (order == '<' && host_is_big_endian()));
  if (swap)
    for (size_t off = 0; off + a.item_size <= a.bytes.size(); off += a.item_size)
      std::reverse(a.bytes.begin() + static_cast<std::ptrdiff_t>(off),
                   a.bytes.begin() + static_cast<std::ptrdiff_t>(off + a.item_size));
  return a;
}

// A float32/float64 array as a C-contiguous float64 CPU tensor (Fortran order transposed back).
at::Tensor float_tensor(NpyArray& a, const std::string& path, const std::string& key) {
  at::ScalarType type;
  if (a.kind == 'f' && a.item_size == 8) {
    type = at::kDouble;
  } else if (a.kind == 'f' && a.item_size == 4) {
    type = at::kFloat;
  } else {
    read_error(path,
               "unsupported dtype " + a.dtype() + " for " + key + "; expected float32 or float64");
  }
  std::vector<int64_t> sizes = a.shape;
  at::Tensor t;
  if (a.fortran_order && sizes.size() >= 2) {
    // Column-major data is the row-major layout of the reversed shape.
    std::reverse(sizes.begin(), sizes.end());
    std::vector<int64_t> perm(sizes.size());
    for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int64_t>(perm.size() - 1 - i);
    t = at::from_blob(a.bytes.data(), sizes, type).permute(perm);
  } else {
    t = at::from_blob(a.bytes.data(), sizes, type);
  }
  t = t.to(at::kDouble, /*non_blocking=*/false, /*copy=*/true).contiguous();
  if (!at::isfinite(t).all().item<bool>()) read_error(path, key + " contains non-finite values");
  return t;
}

int64_t integer_scalar(const NpyArray& a, const std::string& path, const std::string& key) {
  if ((a.kind != 'i' && a.kind != 'u') ||
      (a.item_size != 1 && a.item_size != 2 && a.item_size != 4 && a.item_size != 8))
    read_error(path, "unsupported dtype " + a.dtype() + " for " + key + "; expected an integer");
  if (a.numel() != 1)
    read_error(path, "expected " + key + " to hold one integer (shape [] or [1]), got shape " +
                         shape_str(a.shape));
  const char* p = a.bytes.data();
  auto load = [p](auto v) {
    std::memcpy(&v, p, sizeof(v));
    return v;
  };
  if (a.kind == 'u') {
    uint64_t v = a.item_size == 1   ? load(uint8_t{})
                 : a.item_size == 2 ? load(uint16_t{})
                 : a.item_size == 4 ? load(uint32_t{})
                                    : load(uint64_t{});
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      read_error(path, key + " = " + std::to_string(v) + " is too large");
    return static_cast<int64_t>(v);
  }
  const int64_t v = a.item_size == 1   ? load(int8_t{})
                    : a.item_size == 2 ? load(int16_t{})
                    : a.item_size == 4 ? load(int32_t{})
                                       : load(int64_t{});
  if (v < 0) read_error(path, "expected a sample count " + key + " >= 0, got " + std::to_string(v));
  return v;
}

// The .npy bytes numpy.save would write for a C-contiguous array.
template <typename T>
std::string npy_bytes(T* data, size_t numel, std::vector<size_t> shape) {
  return xt::dump_npy(xt::adapt(data, numel, xt::no_ownership(), shape));
}

std::string temporary_name(const std::string& path) {
  std::random_device rd;
  std::ostringstream s;
  s << path << ".tmp-" << ::getpid() << "-" << std::hex << rd();
  return s.str();
}

[[noreturn]] void write_error(const std::string& path, const std::string& what) {
  throw std::runtime_error("write_stats_npz: cannot write '" + path + "': " + what);
}

#endif  // SDEKIT_WITH_LIBZIP

}  // namespace

#if !SDEKIT_WITH_LIBZIP
void write_stats_npz(const std::string& path, const GaussianStats&) {
  throw std::runtime_error("'" + path +
                           "': .npz files need libzip; this build was configured with "
                           "SDEKIT_WITH_LIBZIP=OFF");
}

StatsFile read_stats_npz(const std::string& path) {
  throw std::runtime_error("'" + path +
                           "': .npz files need libzip; this build was configured with "
                           "SDEKIT_WITH_LIBZIP=OFF");
}
#else
void write_stats_npz(const std::string& path, const GaussianStats& stats) {
  if (stats.count < 2)
    throw std::invalid_argument(
        "write_stats_npz: '" + path +
        "': expected statistics of at least 2 samples, got n = " + std::to_string(stats.count));
  at::Tensor mu = stats.mean().to(at::kDouble).contiguous();
  at::Tensor sigma = stats.covariance().to(at::kDouble).contiguous();
  if (!at::isfinite(mu).all().item<bool>() || !at::isfinite(sigma).all().item<bool>())
    throw std::invalid_argument("write_stats_npz: '" + path +
                                "': the statistics contain non-finite values");
  const size_t d = static_cast<size_t>(mu.size(0));
  int64_t n = stats.count;
  const std::vector<std::pair<std::string, std::string> > entries = {
      {"mu.npy", npy_bytes(mu.data_ptr<double>(), d, {d})},
      {"sigma.npy", npy_bytes(sigma.data_ptr<double>(), d * d, {d, d})},
      {"n.npy", npy_bytes(&n, 1, {})},
  };

  const std::string tmp = temporary_name(path);
  int code = 0;
  zip_t* za = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_EXCL, &code);
  if (!za) {
    zip_error_t error;
    zip_error_init_with_code(&error, code);
    const std::string reason = zip_error_strerror(&error);
    zip_error_fini(&error);
    write_error(path, reason);
  }
  ZipHandle archive(za);
  for (const auto& entry : entries) {
    zip_source_t* src = zip_source_buffer(za, entry.second.data(), entry.second.size(), 0);
    if (!src) write_error(path, zip_strerror(za));
    const zip_int64_t idx = zip_file_add(za, entry.first.c_str(), src, 0);
    if (idx < 0) {
      zip_source_free(src);
      write_error(path, zip_strerror(za));
    }
    if (zip_set_file_compression(za, static_cast<zip_uint64_t>(idx), ZIP_CM_STORE, 0) != 0)
      write_error(path, zip_strerror(za));
  }
  // zip_close writes the archive (libzip itself goes through a temporary file) and frees it.
  if (zip_close(za) != 0) write_error(path, zip_strerror(za));
  archive.release();

  auto fail_and_remove = [&](const std::string& what) {
    const std::string reason = what + ": " + std::strerror(errno);
    std::remove(tmp.c_str());
    write_error(path, reason);
  };
  const int fd = ::open(tmp.c_str(), O_RDONLY);
  if (fd < 0) fail_and_remove("cannot reopen the temporary file '" + tmp + "'");
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced) fail_and_remove("cannot flush the temporary file '" + tmp + "'");
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    fail_and_remove("cannot rename the temporary file '" + tmp + "'");
}

StatsFile read_stats_npz(const std::string& path) {
  const ZipHandle archive = open_archive(path);
  zip_t* za = archive.get();
  const zip_int64_t mu_idx = locate(za, "mu"), sigma_idx = locate(za, "sigma");
  if (mu_idx < 0 || sigma_idx < 0) {
    std::string missing = mu_idx < 0 && sigma_idx < 0 ? "'mu' and 'sigma'"
                          : mu_idx < 0                ? "'mu'"
                                                      : "'sigma'";
    read_error(path, "missing " + missing + " (keys found: " + key_list(entry_names(za)) + ")");
  }
  NpyArray mu_npy = parse_npy(read_entry(za, mu_idx, path, "mu.npy"), path, "mu.npy");
  NpyArray sigma_npy = parse_npy(read_entry(za, sigma_idx, path, "sigma.npy"), path, "sigma.npy");
  StatsFile out;
  out.mu = float_tensor(mu_npy, path, "mu");
  out.sigma = float_tensor(sigma_npy, path, "sigma");
  const int64_t d = out.mu.dim() == 1 ? out.mu.size(0) : -1;
  if (d < 1 || out.sigma.dim() != 2 || out.sigma.size(0) != d || out.sigma.size(1) != d)
    read_error(path, "expected mu [d] and sigma [d, d] with d >= 1, got mu " + shape_str(out.mu) +
                         " and sigma " + shape_str(out.sigma));
  const zip_int64_t n_idx = locate(za, "n");
  if (n_idx >= 0)
    out.count =
        integer_scalar(parse_npy(read_entry(za, n_idx, path, "n.npy"), path, "n.npy"), path, "n");
  return out;
}

#endif  // SDEKIT_WITH_LIBZIP

GaussianStats to_gaussian_stats(const StatsFile& file) {
  if (file.count == -1)
    throw std::invalid_argument(
        "to_gaussian_stats: the file holds no sample count n (pytorch-fid stores only mu and "
        "sigma), so its statistics cannot be merged");
  if (file.count < 2)
    throw std::invalid_argument("to_gaussian_stats: expected a sample count n >= 2, got " +
                                std::to_string(file.count));
  if (!file.mu.defined() || !file.sigma.defined() || file.mu.dim() != 1 || file.sigma.dim() != 2 ||
      file.sigma.size(0) != file.mu.size(0) || file.sigma.size(1) != file.mu.size(0))
    throw std::invalid_argument(
        "to_gaussian_stats: expected mu [d] and sigma [d, d], got mu " +
        (file.mu.defined() ? shape_str(file.mu) : std::string("undefined")) + " and sigma " +
        (file.sigma.defined() ? shape_str(file.sigma) : std::string("undefined")));
  GaussianStats stats;
  stats.count = file.count;
  stats.mu = file.mu.to(at::kCPU, at::kDouble).contiguous().clone();
  stats.m2 =
      file.sigma.to(at::kCPU, at::kDouble).contiguous() * static_cast<double>(file.count - 1);
  return stats;
}

void check_covariance(const StatsFile& s, const std::string& path) {
  const at::Tensor mu = s.mu.to(at::kDouble), sigma = s.sigma.to(at::kDouble);
  if (!at::isfinite(mu).all().item<bool>()) read_error(path, "'mu' holds non-finite values");
  if (!at::isfinite(sigma).all().item<bool>()) read_error(path, "'sigma' holds non-finite values");
  auto g = [](double v) {
    std::ostringstream os;
    os << std::setprecision(4) << v;
    return os.str();
  };
  const double scale = sigma.abs().max().item<double>();
  if (!(scale < 1e150))
    read_error(path, "'sigma' has entries of magnitude " + g(scale) +
                         ", beyond what a distance can be computed from");
  const double asym = (sigma - sigma.t()).abs().max().item<double>();
  if (asym > 1e-5 * scale)
    read_error(path, "'sigma' is not symmetric (largest |sigma - sigma^T| is " + g(asym) + ")");
  const at::Tensor eig = at::linalg_eigvalsh(0.5 * (sigma + sigma.t()));
  const double lo = eig.min().item<double>(), hi = eig.abs().max().item<double>();
  if (lo < -1e-5 * hi)
    read_error(path, "'sigma' is not positive semi-definite (smallest eigenvalue " + g(lo) + ")");
}

}  // namespace sdekit
