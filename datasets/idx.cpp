#include "datasets/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <new>
#include <stdexcept>
#include <utility>

namespace sdekit {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPackageHint =
    "Fashion-MNIST comes with Debian's package dataset-fashion-mnist (apt-get install "
    "dataset-fashion-mnist); or set SDEKIT_FASHION_MNIST_DIR to a folder holding its files";

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::invalid_argument("read_idx: '" + path + "': " + what);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The bytes of a file, inflated on the fly when it starts with the gzip signature 1f 8b (one or
// more gzip members), read as they are otherwise.
class ByteSource {
 public:
  explicit ByteSource(std::string path) : path_(std::move(path)) {
    std::error_code ec;
    const fs::file_status st = fs::status(path_, ec);
    if (!fs::exists(st)) fail(path_, "no such file");
    if (fs::is_directory(st)) fail(path_, "is a directory, not a file");
    in_.open(path_, std::ios::binary);
    if (!in_) fail(path_, std::string("cannot open for reading: ") + std::strerror(errno));
    in_.seekg(0, std::ios::end);
    const std::streamoff size = in_.tellg();
    in_.seekg(0, std::ios::beg);
    if (size < 0 || !in_) fail(path_, "cannot determine the file size");
    file_size_ = static_cast<uint64_t>(size);
    uint8_t sig[2] = {0, 0};
    in_.read(reinterpret_cast<char*>(sig), 2);
    gzip_ = in_.gcount() == 2 && sig[0] == 0x1f && sig[1] == 0x8b;
    in_.clear();
    in_.seekg(0, std::ios::beg);
    if (!gzip_ && ends_with(path_, ".gz"))
      fail(path_,
           "not a gzip file: the name ends in .gz but the file does not start with the gzip "
           "signature 1f 8b");
    if (gzip_) {
      buf_.resize(size_t{1} << 20);
      if (inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK)
        throw std::runtime_error("zlib: inflateInit2 failed");
      zs_init_ = true;
    }
  }
  ~ByteSource() {
    if (zs_init_) inflateEnd(&zs_);
  }
  ByteSource(const ByteSource&) = delete;
  ByteSource& operator=(const ByteSource&) = delete;

  /// An upper bound on the bytes still to come: the file size, or for gzip deflate's maximal
  /// expansion (1032:1) of the whole file.
  uint64_t max_remaining() const { return gzip_ ? 1040 * file_size_ + 4096 : file_size_; }

  /// Reads up to n bytes into dst; fewer only at the end of the data.
  uint64_t read(uint8_t* dst, uint64_t n) {
    uint64_t total = 0;
    while (total < n) {
      const uint64_t want = std::min<uint64_t>(n - total, kChunk);
      const uint64_t got = gzip_ ? inflate_some(dst + total, want) : read_raw(dst + total, want);
      total += got;
      if (got < want) break;
    }
    return total;
  }

  /// Reads and counts everything that is left.
  uint64_t skip_rest() {
    std::vector<uint8_t> scratch(size_t{1} << 16);
    uint64_t total = 0, got;
    while ((got = read(scratch.data(), scratch.size())) > 0) total += got;
    return total;
  }

 private:
  static constexpr uint64_t kChunk = uint64_t{1} << 30;  // fits zlib's uInt

  uint64_t read_raw(uint8_t* dst, uint64_t n) {
    in_.read(reinterpret_cast<char*>(dst), static_cast<std::streamsize>(n));
    const uint64_t got = static_cast<uint64_t>(in_.gcount());
    if (got < n && in_.bad()) fail(path_, "read error");
    return got;
  }

  // Makes at least k compressed bytes available unless the file ends first.
  void ensure_input(size_t k) {
    if (zs_.avail_in >= k || file_done_) return;
    if (zs_.avail_in > 0) std::memmove(buf_.data(), zs_.next_in, zs_.avail_in);
    size_t have = zs_.avail_in;
    while (have < k && !file_done_) {
      in_.read(reinterpret_cast<char*>(buf_.data() + have),
               static_cast<std::streamsize>(buf_.size() - have));
      const size_t got = static_cast<size_t>(in_.gcount());
      if (got == 0) {
        if (in_.bad()) fail(path_, "read error");
        file_done_ = true;
      }
      have += got;
      fed_ += got;
    }
    zs_.next_in = buf_.data();
    zs_.avail_in = static_cast<uInt>(have);
  }

  uint64_t consumed() const { return fed_ - zs_.avail_in; }

  uint64_t inflate_some(uint8_t* dst, uint64_t n) {
    zs_.next_out = dst;
    zs_.avail_out = static_cast<uInt>(n);
    while (zs_.avail_out > 0 && !stream_done_) {
      ensure_input(1);
      const int ret = inflate(&zs_, Z_NO_FLUSH);
      if (ret == Z_STREAM_END) {
        // Another gzip member may follow; anything else is an error.
        ensure_input(2);
        if (zs_.avail_in == 0) {
          stream_done_ = true;
        } else if (zs_.avail_in >= 2 && zs_.next_in[0] == 0x1f && zs_.next_in[1] == 0x8b) {
          inflateReset(&zs_);
        } else {
          fail(path_, "corrupt gzip stream: trailing garbage after the gzip data at byte " +
                          std::to_string(consumed()) + " of " + std::to_string(file_size_));
        }
        continue;
      }
      if (ret == Z_MEM_ERROR) throw std::bad_alloc();
      if (ret == Z_DATA_ERROR || ret == Z_NEED_DICT || ret == Z_STREAM_ERROR)
        fail(path_, std::string("corrupt gzip stream (zlib: ") +
                        (zs_.msg != nullptr ? zs_.msg : "data error") + ")");
      // Z_OK or Z_BUF_ERROR: output room left and no input to come means the stream was cut.
      if (zs_.avail_out > 0 && zs_.avail_in == 0 && file_done_)
        fail(path_, "corrupt gzip stream: truncated, the file ends after " +
                        std::to_string(file_size_) + " bytes before the end of the gzip data");
    }
    return n - zs_.avail_out;
  }

  std::string path_;
  std::ifstream in_;
  uint64_t file_size_ = 0;
  bool gzip_ = false;
  z_stream zs_{};
  bool zs_init_ = false;
  std::vector<uint8_t> buf_;
  uint64_t fed_ = 0;  // compressed bytes moved into buf_ so far
  bool file_done_ = false, stream_done_ = false;
};

uint32_t be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

std::string shape_str(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

at::Tensor read_idx_impl(const std::string& path, const uint32_t* expected_magic) {
  ByteSource src(path);
  uint8_t head[4 + 4 * 8];
  const uint64_t got_magic = src.read(head, 4);
  if (got_magic < 4)
    fail(path, "truncated header: " + std::to_string(got_magic) +
                   " bytes, an IDX header needs at least 4");
  const uint32_t magic = be32(head);
  const uint32_t ndim = magic & 0xffu;
  if (expected_magic != nullptr && magic != *expected_magic)
    fail(path, "bad magic number: expected " + hex32(*expected_magic) + ", got " + hex32(magic));
  if ((magic >> 8) != 0x08u || ndim < 1 || ndim > 8)
    fail(path,
         "bad magic number: expected 0x000008dd (uint8 elements, dd = 01..08 dimensions), got " +
             hex32(magic));
  const uint64_t header = 4 + 4 * uint64_t{ndim};
  const uint64_t got_dims = src.read(head + 4, 4 * uint64_t{ndim});
  if (4 + got_dims < header)
    fail(path, "truncated header: " + std::to_string(4 + got_dims) + " bytes, the header of " +
                   std::to_string(ndim) + " dimensions needs " + std::to_string(header));
  std::vector<int64_t> dims(ndim);
  uint64_t expected = 1;
  bool overflow = false;
  for (uint32_t i = 0; i < ndim; ++i) {
    dims[i] = be32(head + 4 + 4 * i);
    const uint64_t d = static_cast<uint64_t>(dims[i]);
    if (d != 0 && expected > std::numeric_limits<uint64_t>::max() / d) overflow = true;
    if (!overflow) expected *= d;
  }
  auto truncated = [&](uint64_t got) {
    fail(path, "truncated data: expected " +
                   (overflow ? std::string("more than 2^64") : std::to_string(expected)) +
                   " bytes from the header's shape " + shape_str(dims) + ", got " +
                   std::to_string(got));
  };
  // A size the file cannot hold is reported without allocating it.
  if (overflow || expected > src.max_remaining()) truncated(src.skip_rest());
  at::Tensor t = at::empty(dims, at::kByte);
  const uint64_t got = src.read(t.data_ptr<uint8_t>(), expected);
  if (got < expected) truncated(got);
  uint8_t extra;
  if (src.read(&extra, 1) == 1)
    fail(path, "trailing data: expected " + std::to_string(expected) +
                   " bytes from the header's shape " + shape_str(dims) + ", got " +
                   std::to_string(expected + 1 + src.skip_rest()));
  return t;
}

}  // namespace

at::Tensor read_idx(const std::string& path) {
  return read_idx_impl(path, nullptr);
}

at::Tensor read_idx(const std::string& path, uint32_t expected_magic) {
  return read_idx_impl(path, &expected_magic);
}

std::string default_fashion_mnist_dir() {
  const char* env = std::getenv("SDEKIT_FASHION_MNIST_DIR");
  if (env != nullptr && *env != '\0') return env;
  return "/usr/share/datasets/fashion-mnist";
}

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                 "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return names;
}

ImageDataset load_fashion_mnist(const std::string& split, const std::string& dir) {
  std::string prefix;
  if (split == "train") {
    prefix = "train";
  } else if (split == "test") {
    prefix = "t10k";
  } else {
    throw std::invalid_argument("load_fashion_mnist: unknown split '" + split +
                                "' (valid: train, test)");
  }
  auto locate = [&](const std::string& stem) {
    const std::string gz = (fs::path(dir) / (stem + ".gz")).string();
    const std::string raw = (fs::path(dir) / stem).string();
    std::error_code ec;
    if (fs::exists(gz, ec)) return gz;
    if (fs::exists(raw, ec)) return raw;
    throw std::invalid_argument("load_fashion_mnist: missing file '" + gz + "' (nor '" + raw +
                                "'): " + kPackageHint);
  };
  const std::string image_path = locate(prefix + "-images-idx3-ubyte");
  const std::string label_path = locate(prefix + "-labels-idx1-ubyte");

  const at::Tensor images = read_idx(image_path, 0x00000803u);
  if (images.size(1) != 28 || images.size(2) != 28)
    throw std::invalid_argument(
        "load_fashion_mnist: '" + image_path + "': expected 28 x 28 images, got " +
        std::to_string(images.size(1)) + " x " + std::to_string(images.size(2)));
  const at::Tensor labels = read_idx(label_path, 0x00000801u);
  if (images.size(0) != labels.size(0))
    throw std::invalid_argument("load_fashion_mnist: count mismatch: '" + image_path + "' has " +
                                std::to_string(images.size(0)) + " images but '" + label_path +
                                "' has " + std::to_string(labels.size(0)) + " labels");
  if (labels.numel() > 0) {
    const int64_t top = labels.max().item<int64_t>();
    if (top >= static_cast<int64_t>(fashion_mnist_class_names().size()))
      throw std::invalid_argument("load_fashion_mnist: '" + label_path + "': label " +
                                  std::to_string(top) + " out of range 0..9");
  }
  ImageDataset out;
  out.images = images.to(at::kFloat).div_(127.5).sub_(1.0).unsqueeze(1);
  out.labels = labels.to(at::kLong);
  return out;
}

}  // namespace sdekit
