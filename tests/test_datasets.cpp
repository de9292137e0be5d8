// The datasets layer: Fashion-MNIST from Debian's dataset-fashion-mnist (sizes, class histogram,
// first labels and pixel sums computed with Python's gzip module, and every pixel against an
// independent zlib gzread decoding), IDX files written here (gzip and uncompressed, good and bad),
// and the toy 2-D sets against their documented geometry and moments.
#include <ATen/CPUGeneratorImpl.h>
#include <unistd.h>
#include <zlib.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "datasets/idx.hpp"
#include "datasets/toy.hpp"

using namespace sdekit;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {

constexpr double kPi = 3.14159265358979323846;

at::Generator gen(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

// A fresh folder under the system temp directory, removed with its contents at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("sdekit_test_datasets_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

using Bytes = std::vector<uint8_t>;

void put_be32(Bytes& b, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<uint8_t>(v >> shift));
}

// An IDX file: magic, big-endian sizes, then `data` as is (which may disagree with the sizes).
Bytes idx_bytes(uint32_t magic, const std::vector<uint32_t>& dims, const Bytes& data) {
  Bytes b;
  put_be32(b, magic);
  for (uint32_t d : dims) put_be32(b, d);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

Bytes iota_bytes(size_t n, uint8_t start = 0) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(start + 7 * i);
  return b;
}

void write_raw(const std::string& path, const Bytes& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(out.good());
}

// Writes `b` as one gzip member with zlib's gzopen/gzwrite ("ab" appends a second member).
void write_gz(const std::string& path, const Bytes& b, const char* mode = "wb") {
  gzFile f = gzopen(path.c_str(), mode);
  REQUIRE(f != nullptr);
  if (!b.empty()) REQUIRE(gzwrite(f, b.data(), static_cast<unsigned>(b.size())) == int(b.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

Bytes read_raw(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The decompressed bytes of a gzip file, through zlib's gzread (not the library's inflate loop).
Bytes gz_read_all(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  REQUIRE(f != nullptr);
  Bytes out;
  std::vector<uint8_t> buf(1 << 16);
  int k;
  while ((k = gzread(f, buf.data(), static_cast<unsigned>(buf.size()))) > 0)
    out.insert(out.end(), buf.begin(), buf.begin() + k);
  REQUIRE(k == 0);
  gzclose(f);
  return out;
}

// The message of the std::invalid_argument that f throws.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  FAIL("expected std::invalid_argument, nothing was thrown");
  return {};
}

ImageDataset load_or_fail(const std::string& split) {
  try {
    return load_fashion_mnist(split);
  } catch (const std::exception& e) {
    FAIL(
        "Fashion-MNIST is a project dependency (Debian package dataset-fashion-mnist, installed "
        "by scripts/setup.sh): "
        << e.what());
  }
  return {};
}

std::vector<int64_t> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

// Points of a parametric curve, [m, 2].
at::Tensor curve(const std::function<std::pair<double, double>(double)>& f, double a, double b,
                 int64_t m) {
  at::Tensor c = at::empty({m, 2}, at::kDouble);
  auto acc = c.accessor<double, 2>();
  for (int64_t i = 0; i < m; ++i) {
    const auto [x, y] = f(a + (b - a) * static_cast<double>(i) / static_cast<double>(m - 1));
    acc[i][0] = x;
    acc[i][1] = y;
  }
  return c;
}

// Distance of each row of p to the nearest point of a densely sampled curve.
at::Tensor distance_to(const at::Tensor& p, const at::Tensor& c) {
  return std::get<0>(at::cdist(p, c).min(1));
}

// Mean [2] and covariance [2, 2] of the rows of x.
std::pair<at::Tensor, at::Tensor> moments(const at::Tensor& x) {
  const at::Tensor m = x.mean(0);
  const at::Tensor d = x - m;
  return {m, d.transpose(0, 1).matmul(d) / static_cast<double>(x.size(0) - 1)};
}

// Checks a split's shapes, range, class histogram, first ten labels and the sum of its pixel bytes
// (Python: sum(gzip.open(f).read()[16:])); returns the bytes, recovered as round((x + 1) 127.5).
at::Tensor check_split(const std::string& split, int64_t n, const std::vector<int64_t>& first,
                       int64_t byte_sum) {
  INFO("split " << split << " from " << default_fashion_mnist_dir());
  const ImageDataset ds = load_or_fail(split);
  REQUIRE(ds.images.sizes() == at::IntArrayRef({n, 1, 28, 28}));
  REQUIRE(ds.images.scalar_type() == at::kFloat);
  REQUIRE(ds.labels.sizes() == at::IntArrayRef({n}));
  REQUIRE(ds.labels.scalar_type() == at::kLong);
  CHECK(ds.images.min().item<float>() == -1.0f);
  CHECK(ds.images.max().item<float>() == 1.0f);
  CHECK(to_vector(at::bincount(ds.labels)) == std::vector<int64_t>(10, n / 10));
  CHECK(to_vector(ds.labels.slice(0, 0, 10)) == first);
  // Per-image sums are exact in float32 (at most 784 * 255 < 2^24); their total in float64.
  const at::Tensor bytes = (ds.images + 1.0).mul_(127.5).round_();
  CHECK(bytes.view({n, 784}).sum(1).to(at::kDouble).sum().item<double>() ==
        static_cast<double>(byte_sum));
  const double mean =
      ds.images.view({n, 784}).sum(1).to(at::kDouble).sum().item<double>() / (n * 784.0);
  CHECK(mean == Approx(static_cast<double>(byte_sum) / (n * 784.0) / 127.5 - 1).margin(1e-6));
  return bytes.to(at::kByte);
}

}  // namespace

TEST_CASE("Fashion-MNIST train: 60000 images, 6000 per class, known labels and pixel sum",
          "[datasets]") {
  check_split("train", 60000, {9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, 3431114169);
  CHECK(fashion_mnist_class_names() ==
        std::vector<std::string>{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                 "Shirt", "Sneaker", "Bag", "Ankle boot"});
}

TEST_CASE("Fashion-MNIST test: 10000 images, 1000 per class, every pixel as zlib's gzread reads it",
          "[datasets]") {
  const int64_t test_sum = 573469082;
  const at::Tensor bytes = check_split("test", 10000, {9, 2, 1, 1, 6, 1, 4, 6, 5, 7}, test_sum);
  const Bytes raw = gz_read_all(default_fashion_mnist_dir() + "/t10k-images-idx3-ubyte.gz");
  REQUIRE(raw.size() == 16 + size_t{10000} * 28 * 28);
  int64_t sum = 0;
  for (size_t i = 16; i < raw.size(); ++i) sum += raw[i];
  CHECK(sum == test_sum);
  CHECK(at::equal(
      bytes, at::from_blob(const_cast<uint8_t*>(raw.data() + 16), {10000, 1, 28, 28}, at::kByte)));
}

TEST_CASE("read_idx reads gzip and uncompressed IDX files", "[datasets]") {
  TempDir dir;
  const Bytes data = iota_bytes(3 * 2 * 4, 5);
  const Bytes file = idx_bytes(0x00000803, {3, 2, 4}, data);
  const at::Tensor want = at::from_blob(const_cast<uint8_t*>(data.data()), {3, 2, 4}, at::kByte);

  SECTION("uncompressed") {
    write_raw(dir / "a-idx3-ubyte", file);
    const at::Tensor t = read_idx(dir / "a-idx3-ubyte");
    CHECK(t.scalar_type() == at::kByte);
    CHECK(at::equal(t, want));
    CHECK(at::equal(read_idx(dir / "a-idx3-ubyte", 0x00000803), want));
  }
  SECTION("gzip, whatever the name") {
    write_gz(dir / "a-idx3-ubyte.gz", file);
    write_gz(dir / "a.bin", file);
    CHECK(at::equal(read_idx(dir / "a-idx3-ubyte.gz"), want));
    CHECK(at::equal(read_idx(dir / "a.bin", 0x00000803), want));
  }
  SECTION("gzip in two members") {
    const Bytes head(file.begin(), file.begin() + 10), tail(file.begin() + 10, file.end());
    write_gz(dir / "two.gz", head);
    write_gz(dir / "two.gz", tail, "ab");
    CHECK(at::equal(read_idx(dir / "two.gz"), want));
  }
  SECTION("labels, one dimension, and empty data") {
    write_gz(dir / "l.gz", idx_bytes(0x00000801, {5}, {0, 1, 9, 3, 255}));
    CHECK(to_vector(read_idx(dir / "l.gz")) == std::vector<int64_t>{0, 1, 9, 3, 255});
    write_gz(dir / "e.gz", idx_bytes(0x00000803, {0, 28, 28}, {}));
    CHECK(read_idx(dir / "e.gz").sizes() == at::IntArrayRef({0, 28, 28}));
  }
  SECTION("a large file that spans many inflate buffers") {
    const Bytes big = iota_bytes(size_t{300} * 28 * 28, 1);
    write_gz(dir / "big.gz", idx_bytes(0x00000803, {300, 28, 28}, big));
    const at::Tensor t = read_idx(dir / "big.gz");
    CHECK(at::equal(t, at::from_blob(const_cast<uint8_t*>(big.data()), {300, 28, 28}, at::kByte)));
  }
}

TEST_CASE("read_idx names the file and the problem in bad files", "[datasets][errors]") {
  TempDir dir;
  const Bytes good = idx_bytes(0x00000803, {2, 2, 3}, iota_bytes(12));

  SECTION("missing path") {
    const std::string p = dir / "nope-idx3-ubyte.gz";
    CHECK_THAT(error_of([&] { read_idx(p); }), Contains(p) && Contains("no such file"));
  }
  SECTION("a directory") {
    CHECK_THAT(error_of([&] { read_idx(dir.path.string()); }),
               Contains(dir.path.string()) && Contains("directory"));
  }
  SECTION("gzip header claiming more items than present") {
    const std::string p = dir / "short-labels.gz";
    write_gz(p, idx_bytes(0x00000801, {5}, {1, 2, 3}));
    CHECK_THAT(error_of([&] { read_idx(p); }), Contains(p) && Contains("truncated data") &&
                                                   Contains("expected 5 bytes") &&
                                                   Contains("got 3"));
  }
  SECTION("uncompressed header claiming more items than present") {
    const std::string p = dir / "short-images";
    write_raw(p, idx_bytes(0x00000803, {4, 2, 3}, iota_bytes(12)));
    CHECK_THAT(error_of([&] { read_idx(p); }), Contains(p) && Contains("truncated data") &&
                                                   Contains("expected 24 bytes") &&
                                                   Contains("[4, 2, 3]") && Contains("got 12"));
  }
  SECTION("more data than the header says") {
    const std::string p = dir / "long.gz";
    write_gz(p, idx_bytes(0x00000801, {2}, {1, 2, 3}));
    CHECK_THAT(error_of([&] { read_idx(p); }),
               Contains(p) && Contains("expected 2 bytes") && Contains("got 3"));
  }
  SECTION("truncated header") {
    const std::string p = dir / "head.gz";
    write_gz(p, {0, 0, 8, 3, 0, 0});
    CHECK_THAT(error_of([&] { read_idx(p); }), Contains(p) && Contains("truncated header"));
    write_gz(p, {0, 0});
    CHECK_THAT(error_of([&] { read_idx(p); }), Contains(p) && Contains("truncated header"));
  }
  SECTION("wrong magic: labels where images are expected") {
    const std::string p = dir / "labels.gz";
    write_gz(p, idx_bytes(0x00000801, {3}, {1, 2, 3}));
    CHECK_THAT(error_of([&] { read_idx(p, 0x00000803); }), Contains(p) && Contains("bad magic") &&
                                                               Contains("expected 0x00000803") &&
                                                               Contains("got 0x00000801"));
  }
  SECTION("wrong magic: not uint8 IDX at all") {
    const std::string p = dir / "floats.gz";
    write_gz(p, idx_bytes(0x00000d01, {1}, {0, 0, 0, 0}));
    CHECK_THAT(error_of([&] { read_idx(p); }),
               Contains(p) && Contains("bad magic") && Contains("got 0x00000d01"));
  }
  SECTION("plain garbage") {
    const Bytes garbage = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '\n'};
    const std::string gz = dir / "garbage-idx3-ubyte.gz", raw = dir / "garbage-idx3-ubyte";
    write_raw(gz, garbage);
    write_raw(raw, garbage);
    CHECK_THAT(error_of([&] { read_idx(gz); }),
               Contains(gz) && Contains("not a gzip file") && Contains("1f 8b"));
    CHECK_THAT(error_of([&] { read_idx(raw); }),
               Contains(raw) && Contains("bad magic") && Contains("got 0x68656c6c"));
  }
  SECTION("corrupt gzip stream") {
    const std::string p = dir / "corrupt.gz";
    write_gz(p, iota_bytes(4000));  // any payload: the stream is damaged below
    Bytes b = read_raw(p);
    REQUIRE(b.size() > 40);
    for (size_t i = 12; i < 30; ++i) b[i] ^= 0xa5;
    write_raw(p, b);
    CHECK_THAT(error_of([&] { read_idx(p); }), Contains(p) && Contains("corrupt gzip stream"));
  }
  SECTION("gzip stream cut short") {
    const std::string p = dir / "cut.gz";
    write_gz(p, good);
    Bytes b = read_raw(p);
    b.resize(b.size() / 2);
    write_raw(p, b);
    CHECK_THAT(error_of([&] { read_idx(p); }),
               Contains(p) && Contains("corrupt gzip stream") && Contains("truncated"));
  }
  SECTION("garbage after the gzip stream") {
    const std::string p = dir / "tail.gz";
    write_gz(p, good);
    Bytes b = read_raw(p);
    b.push_back('x');
    write_raw(p, b);
    CHECK_THAT(error_of([&] { read_idx(p); }), Contains(p) && Contains("trailing garbage"));
  }
}

TEST_CASE("load_fashion_mnist checks its folder, split, counts and labels", "[datasets][errors]") {
  TempDir dir;
  const std::string d = dir.path.string();
  const std::string images = dir / "train-images-idx3-ubyte.gz";
  const std::string labels = dir / "train-labels-idx1-ubyte.gz";

  SECTION("missing files name the Debian package") {
    CHECK_THAT(error_of([&] { load_fashion_mnist("train", d); }),
               Contains(images) && Contains("apt-get install dataset-fashion-mnist") &&
                   Contains("SDEKIT_FASHION_MNIST_DIR"));
    CHECK_THAT(error_of([&] { load_fashion_mnist("test", d); }),
               Contains(dir / "t10k-images-idx3-ubyte.gz") &&
                   Contains("apt-get install dataset-fashion-mnist"));
  }
  SECTION("unknown split") {
    CHECK_THAT(error_of([&] { load_fashion_mnist("validation", d); }),
               Contains("unknown split 'validation'") && Contains("train") && Contains("test"));
  }
  SECTION("image and label counts differ") {
    write_gz(images, idx_bytes(0x00000803, {3, 28, 28}, iota_bytes(3 * 28 * 28)));
    write_gz(labels, idx_bytes(0x00000801, {2}, {4, 5}));
    CHECK_THAT(error_of([&] { load_fashion_mnist("train", d); }),
               Contains("count mismatch") && Contains(images) && Contains("3 images") &&
                   Contains(labels) && Contains("2 labels"));
  }
  SECTION("labels and images swapped") {
    write_gz(images, idx_bytes(0x00000801, {2}, {4, 5}));
    write_gz(labels, idx_bytes(0x00000801, {2}, {4, 5}));
    CHECK_THAT(error_of([&] { load_fashion_mnist("train", d); }),
               Contains(images) && Contains("expected 0x00000803") && Contains("got 0x00000801"));
  }
  SECTION("images that are not 28 x 28") {
    write_gz(images, idx_bytes(0x00000803, {2, 4, 4}, iota_bytes(32)));
    write_gz(labels, idx_bytes(0x00000801, {2}, {4, 5}));
    CHECK_THAT(error_of([&] { load_fashion_mnist("train", d); }),
               Contains(images) && Contains("28 x 28") && Contains("4 x 4"));
  }
  SECTION("a label out of range") {
    write_gz(images, idx_bytes(0x00000803, {2, 28, 28}, iota_bytes(2 * 28 * 28)));
    write_gz(labels, idx_bytes(0x00000801, {2}, {4, 12}));
    CHECK_THAT(error_of([&] { load_fashion_mnist("train", d); }),
               Contains(labels) && Contains("label 12"));
  }
  SECTION("uncompressed files, scaled to [-1, 1]") {
    Bytes pixels(2 * 28 * 28, 0);
    pixels[1] = 255;
    pixels[2] = 51;
    write_raw(dir / "train-images-idx3-ubyte", idx_bytes(0x00000803, {2, 28, 28}, pixels));
    write_raw(dir / "train-labels-idx1-ubyte", idx_bytes(0x00000801, {2}, {7, 0}));
    const ImageDataset ds = load_fashion_mnist("train", d);
    REQUIRE(ds.images.sizes() == at::IntArrayRef({2, 1, 28, 28}));
    CHECK(ds.images[0][0][0][0].item<float>() == -1.0f);
    CHECK(ds.images[0][0][0][1].item<float>() == 1.0f);
    CHECK(ds.images[0][0][0][2].item<float>() == Approx(51 / 127.5 - 1).epsilon(1e-6));
    CHECK(to_vector(ds.labels) == std::vector<int64_t>{7, 0});
  }
}

TEST_CASE("toy data sets: names, shapes, determinism and bad input", "[datasets][toy]") {
  CHECK(toy_dataset_names() == std::vector<std::string>{"two-moons", "swiss-roll", "checkerboard"});
  for (const auto& name : toy_dataset_names()) {
    INFO(name);
    auto g1 = gen(7), g2 = gen(7), g3 = gen(8);
    const at::Tensor a = toy_dataset(name, 501, g1);
    CHECK(a.sizes() == at::IntArrayRef({501, 2}));
    CHECK(a.scalar_type() == at::kDouble);
    CHECK(at::equal(a, toy_dataset(name, 501, g2)));
    CHECK_FALSE(at::equal(a, toy_dataset(name, 501, g3)));
    // The generator advances: a second draw differs from the first.
    CHECK_FALSE(at::equal(a, toy_dataset(name, 501, g1)));
    CHECK(toy_dataset(name, 0, g1).sizes() == at::IntArrayRef({0, 2}));
  }
  auto g = gen(0);
  CHECK_THAT(error_of([&] { toy_dataset("moons", 10, g); }),
             Contains("'moons'") && Contains("two-moons, swiss-roll, checkerboard"));
  CHECK_THAT(error_of([&] { toy_dataset("checkerboard", -1, g); }),
             Contains("n must be >= 0") && Contains("-1"));
}

TEST_CASE("two-moons: two equal noisy half circles with the documented moments",
          "[datasets][toy]") {
  const int64_t n = 10000;
  auto g = gen(11);
  const at::Tensor p = toy_dataset("two-moons", n, g);
  // The noiseless moons: upper half circle of radius 2 about (-1, -1/2), lower about (1, 1/2).
  const at::Tensor upper =
      curve([](double th) { return std::make_pair(2 * std::cos(th) - 1, 2 * std::sin(th) - 0.5); },
            0, kPi, 2001);
  const at::Tensor lower =
      curve([](double th) { return std::make_pair(1 - 2 * std::cos(th), 0.5 - 2 * std::sin(th)); },
            0, kPi, 2001);
  const at::Tensor du = distance_to(p, upper), dl = distance_to(p, lower);
  const at::Tensor on_upper = du.lt(dl);
  // The arcs are 1.0 apart at their closest; the noise has std 0.1 per coordinate.
  CHECK(on_upper.sum().item<int64_t>() == n / 2);
  CHECK(at::minimum(du, dl).max().item<double>() < 0.6);
  // The distance to the arc is about |normal component of the noise|: mean 0.1 sqrt(2/pi).
  CHECK(at::minimum(du, dl).mean().item<double>() ==
        Approx(0.1 * std::sqrt(2 / kPi)).epsilon(0.05));
  // Rows are shuffled: both moons appear in the first 100 rows.
  const int64_t first = on_upper.slice(0, 0, 100).sum().item<int64_t>();
  CHECK(first > 20);
  CHECK(first < 80);

  // Moments against the closed forms (toy.hpp), from 200000 samples: standard errors are about
  // 0.004 (mean x), 0.002 (mean y) and 0.01 (second moments); tolerances are 5 of them.
  auto g2 = gen(12);
  const auto [m, C] = moments(toy_dataset("two-moons", 200000, g2));
  const double s2 = 0.05 * 0.05;
  CHECK(std::abs(m[0].item<double>()) < 0.02);
  CHECK(std::abs(m[1].item<double>()) < 0.01);
  CHECK(C[0][0].item<double>() == Approx(3 + 4 * s2).margin(0.05));
  CHECK(C[1][1].item<double>() ==
        Approx(4 * (0.5 - 4 / (kPi * kPi) + std::pow(2 / kPi - 0.25, 2) + s2)).margin(0.03));
  CHECK(C[0][1].item<double>() == Approx(-(4 / kPi - 0.5)).margin(0.03));
}

TEST_CASE("swiss-roll: a noisy spiral of radius 0.3 pi to 0.9 pi with the documented moments",
          "[datasets][toy]") {
  auto g = gen(21);
  const at::Tensor p = toy_dataset("swiss-roll", 4000, g);
  const double a = 1.5 * kPi, b = 4.5 * kPi;
  const at::Tensor spiral =
      curve([](double t) { return std::make_pair(t * std::cos(t) / 5, t * std::sin(t) / 5); }, a, b,
            6001);
  const at::Tensor d = distance_to(p, spiral);
  CHECK(d.max().item<double>() < 0.6);  // coils are 2 pi / 5 = 1.26 apart, noise std 0.1
  // About the normal noise component's mean 0.1 sqrt(2/pi), a few percent more from the curvature.
  CHECK(d.mean().item<double>() == Approx(0.1 * std::sqrt(2 / kPi)).epsilon(0.12));
  const at::Tensor r = p.norm(2, 1);
  CHECK(r.min().item<double>() > 0.3 * kPi - 0.6);
  CHECK(r.min().item<double>() < 0.3 * kPi + 0.1);
  CHECK(r.max().item<double>() < 0.9 * kPi + 0.6);
  CHECK(r.max().item<double>() > 0.9 * kPi - 0.1);

  // Moments: midpoint-rule quadrature over u of the noiseless curve plus the noise variance,
  // checked against the closed forms of toy.hpp and then against 200000 samples (standard errors
  // about 0.003 for the means and 0.006 for the second moments; tolerances are 5 of them).
  const int q = 200000;
  double ex = 0, ey = 0, exx = 0, eyy = 0, exy = 0;
  for (int i = 0; i < q; ++i) {
    const double t = a + (b - a) * (i + 0.5) / q;
    const double x = t * std::cos(t) / 5, y = t * std::sin(t) / 5;
    ex += x / q;
    ey += y / q;
    exx += x * x / q;
    eyy += y * y / q;
    exy += x * y / q;
  }
  exx += 0.01;
  eyy += 0.01;
  CHECK(ex == Approx(0.4).margin(1e-6));
  CHECK(ey == Approx(2 / (15 * kPi)).margin(1e-6));
  CHECK(exx == Approx((4.875 * kPi * kPi - 0.25) / 25 + 0.01).margin(1e-6));
  CHECK(eyy == Approx((4.875 * kPi * kPi + 0.25) / 25 + 0.01).margin(1e-6));
  CHECK(exy == Approx(0.06 * kPi).margin(1e-6));

  auto g2 = gen(22);
  const auto [m, C] = moments(toy_dataset("swiss-roll", 200000, g2));
  CHECK(m[0].item<double>() == Approx(ex).margin(0.015));
  CHECK(m[1].item<double>() == Approx(ey).margin(0.015));
  CHECK(C[0][0].item<double>() == Approx(exx - ex * ex).margin(0.03));
  CHECK(C[1][1].item<double>() == Approx(eyy - ey * ey).margin(0.03));
  CHECK(C[0][1].item<double>() == Approx(exy - ex * ey).margin(0.03));
}

TEST_CASE("checkerboard: uniform on the 8 black squares of a 4 by 4 board about 0",
          "[datasets][toy]") {
  const int64_t n = 200000;
  auto g = gen(31);
  const at::Tensor p = toy_dataset("checkerboard", n, g);
  CHECK(p.min().item<double>() >= -2.0);
  CHECK(p.max().item<double>() < 2.0);
  const at::Tensor cell = at::floor(p).to(at::kLong);  // [n, 2], entries in -2..1
  const at::Tensor i = cell.select(1, 0), j = cell.select(1, 1);
  CHECK(((i + j).remainder(2) == 0).all().item<bool>());  // black squares only
  // Each of the 8 black squares holds n/8 = 25000 points within 5 binomial standard errors (148).
  const std::vector<int64_t> counts = to_vector(at::bincount((i + 2) * 4 + (j + 2), {}, 16));
  for (int64_t ci = 0; ci < 4; ++ci)
    for (int64_t cj = 0; cj < 4; ++cj) {
      INFO("square [" << ci - 2 << ", " << ci - 1 << ") x [" << cj - 2 << ", " << cj - 1 << ")");
      if ((ci + cj) % 2 == 0)
        CHECK(std::abs(counts[ci * 4 + cj] - n / 8) < 5 * 148);
      else
        CHECK(counts[ci * 4 + cj] == 0);
    }
  // Mean 0, Var 4/3, Cov 1/4: standard errors about 0.003 and 0.004; tolerances are 5 of them.
  const auto [m, C] = moments(p);
  CHECK(std::abs(m[0].item<double>()) < 0.015);
  CHECK(std::abs(m[1].item<double>()) < 0.015);
  CHECK(C[0][0].item<double>() == Approx(4.0 / 3).margin(0.02));
  CHECK(C[1][1].item<double>() == Approx(4.0 / 3).margin(0.02));
  CHECK(C[0][1].item<double>() == Approx(0.25).margin(0.02));
}
