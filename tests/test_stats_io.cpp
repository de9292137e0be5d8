// Frechet statistics files (experiments/stats_io.hpp) and the Frechet distance against scipy.
// The reference data under tests/data/ comes from scripts/frechet_reference.py (numpy, scipy):
// Gaussian pairs with pytorch-fid's sqrtm-based distance, and .npz files written by numpy.savez
// and numpy.savez_compressed. Malformed archives are built here with libzip and hand-made .npy
// entries, independently of the writer under test.
//
// Files written by write_stats_npz were checked once by hand with numpy 1.24.2:
//   python3 -c "import numpy as np; f=np.load('x.npz'); print(f['mu'], f['sigma'], f['n'])"
// prints the mean, the covariance and the count.
#include <ATen/CPUGeneratorImpl.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "experiments/frechet.hpp"
#include "experiments/stats_io.hpp"

using namespace sdekit;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string data_path(const std::string& name) {
  return std::string(SDEKIT_TEST_DATA) + "/" + name;
}

fs::path scratch(const std::string& name) {
  // One folder per process: ctest runs test cases in parallel processes.
  const fs::path dir =
      fs::temp_directory_path() / ("sdekit_test_stats_io_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

const json& reference() {
  static const json j = [] {
    std::ifstream in(data_path("frechet_scipy.json"));
    if (!in) throw std::runtime_error("cannot open " + data_path("frechet_scipy.json"));
    return json::parse(in);
  }();
  return j;
}

// A JSON number list [d] or nested list [d][d] as a float64 tensor.
at::Tensor to_tensor(const json& j) {
  if (!j.empty() && j.front().is_array()) {
    std::vector<at::Tensor> rows;
    for (const json& row : j) rows.push_back(to_tensor(row));
    return at::stack(rows);
  }
  const std::vector<double> v = j.get<std::vector<double>>();
  return at::tensor(v, at::kDouble);
}

double rel_err(double got, double want) {
  return std::abs(got - want) / std::max(std::abs(want), 1e-300);
}

// A .npy array as numpy.save lays it out: magic, version 1.0, header padded to 64 bytes, data.
std::string npy(const std::string& descr, const std::string& shape, bool fortran, const void* data,
                size_t nbytes) {
  std::string header = "{'descr': '" + descr +
                       "', 'fortran_order': " + (fortran ? "True" : "False") +
                       ", 'shape': " + shape + ", }";
  header += std::string(63 - (10 + header.size()) % 64, ' ') + "\n";
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(static_cast<const char*>(data), nbytes);
  return out;
}

std::string npy_f8(const std::vector<double>& v, const std::string& shape, bool fortran = false) {
  return npy("<f8", shape, fortran, v.data(), v.size() * sizeof(double));
}

// A zip archive with the given (name, bytes) entries, deflated as libzip does by default.
void write_zip(const fs::path& p, const std::vector<std::pair<std::string, std::string>>& entries) {
  int code = 0;
  zip_t* za = zip_open(p.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
  REQUIRE(za != nullptr);
  for (const auto& e : entries) {
    zip_source_t* src = zip_source_buffer(za, e.second.data(), e.second.size(), 0);
    REQUIRE(src != nullptr);
    REQUIRE(zip_file_add(za, e.first.c_str(), src, 0) >= 0);
  }
  REQUIRE(zip_close(za) == 0);
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
}

GaussianStats stats_of(const at::Tensor& x) {
  GaussianStats s;
  s.add(x);
  return s;
}

at::Tensor features(int64_t n, int64_t d, uint64_t seed) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor A = at::randn({d, d}, g, at::kDouble);
  return at::randn({n, d}, g, at::kDouble).matmul(A) + at::randn({d}, g, at::kDouble) * 3.0;
}

}  // namespace

TEST_CASE("Frechet statistics: frechet_distance matches scipy sqrtm on the reference pairs",
          "[metrics][io]") {
  const json& ref = reference();
  REQUIRE(ref.at("pairs").size() >= 5);
  double max_rel = 0;
  for (const json& p : ref.at("pairs")) {
    const std::string name = p.at("name").get<std::string>();
    const double want = p.at("fd").get<double>();
    const double got = frechet_distance(to_tensor(p.at("mu1")), to_tensor(p.at("sigma1")),
                                        to_tensor(p.at("mu2")), to_tensor(p.at("sigma2")));
    INFO(name << ": ours " << std::setprecision(17) << got << ", scipy " << want
              << ", relative deviation " << rel_err(got, want));
    CHECK(rel_err(got, want) < 1e-6);
    max_rel = std::max(max_rel, rel_err(got, want));
  }
  INFO("largest relative deviation from scipy: " << max_rel);
  CHECK(max_rel < 1e-6);
}

TEST_CASE("Frechet statistics: numpy.savez float64 file reads back exactly", "[metrics][io]") {
  const json& rec = reference().at("fixtures").at("stats_savez.npz");
  const StatsFile f = read_stats_npz(data_path("stats_savez.npz"));
  CHECK(f.mu.scalar_type() == at::kDouble);
  CHECK(f.sigma.scalar_type() == at::kDouble);
  CHECK(at::equal(f.mu, to_tensor(rec.at("mu"))));
  CHECK(at::equal(f.sigma, to_tensor(rec.at("sigma"))));
  CHECK(f.count == -1);
  // Like pytorch-fid's files it holds no n, so it cannot be merged.
  CHECK_THROWS_WITH(to_gaussian_stats(f), Catch::Contains("no sample count n"));
}

TEST_CASE("Frechet statistics: numpy.savez_compressed float32 Fortran-order file",
          "[metrics][io]") {
  const json& rec = reference().at("fixtures").at("stats_savez_compressed.npz");
  const StatsFile f = read_stats_npz(data_path("stats_savez_compressed.npz"));
  const at::Tensor sigma = to_tensor(rec.at("sigma"));
  REQUIRE_FALSE(at::equal(sigma, sigma.t()));  // element order matters
  CHECK(f.mu.scalar_type() == at::kDouble);
  CHECK(f.sigma.is_contiguous());
  CHECK(at::equal(f.mu, to_tensor(rec.at("mu"))));
  CHECK(at::equal(f.sigma, sigma));
  CHECK(f.count == rec.at("n").get<int64_t>());
  const GaussianStats s = to_gaussian_stats(f);
  CHECK(s.count == f.count);
  CHECK(at::allclose(s.covariance(), f.sigma, 1e-15, 0));
}

TEST_CASE("Frechet statistics: big-endian numpy file", "[metrics][io]") {
  const json& rec = reference().at("fixtures").at("stats_big_endian.npz");
  const StatsFile f = read_stats_npz(data_path("stats_big_endian.npz"));
  CHECK(at::equal(f.mu, to_tensor(rec.at("mu"))));
  CHECK(at::equal(f.sigma, to_tensor(rec.at("sigma"))));
  CHECK(f.count == rec.at("n").get<int64_t>());
}

TEST_CASE("Frechet statistics: write then read is bit-exact and keeps the count", "[metrics][io]") {
  const GaussianStats s = stats_of(features(37, 5, 7));
  const fs::path p = scratch("roundtrip.npz");
  write_stats_npz(p.string(), s);
  StatsFile f = read_stats_npz(p.string());
  CHECK(at::equal(f.mu, s.mean()));
  CHECK(at::equal(f.sigma, s.covariance()));
  CHECK(f.count == 37);

  // Overwriting goes through a temporary file renamed into place: nothing else is left behind.
  const GaussianStats s2 = stats_of(features(12, 5, 8));
  write_stats_npz(p.string(), s2);
  f = read_stats_npz(p.string());
  CHECK(at::equal(f.mu, s2.mean()));
  CHECK(f.count == 12);
  int files = 0;
  for (const auto& e : fs::directory_iterator(p.parent_path()))
    files += e.path().filename().string().rfind("roundtrip.npz", 0) == 0;
  CHECK(files == 1);
}

TEST_CASE("Frechet statistics: shards written separately merge to the one-pass statistics",
          "[metrics][io]") {
  const at::Tensor x = features(300, 6, 9);
  const GaussianStats all = stats_of(x);
  const std::vector<std::pair<int64_t, int64_t>> shards = {{0, 50}, {50, 170}, {170, 300}};
  GaussianStats merged;
  for (size_t i = 0; i < shards.size(); ++i) {
    const fs::path p = scratch("shard" + std::to_string(i) + ".npz");
    write_stats_npz(p.string(), stats_of(x.slice(0, shards[i].first, shards[i].second)));
    merged.merge(to_gaussian_stats(read_stats_npz(p.string())));
  }
  REQUIRE(merged.count == 300);
  const double scale = all.covariance().abs().max().item<double>();
  CHECK((merged.mean() - all.mean()).abs().max().item<double>() < 1e-12 * scale);
  CHECK((merged.covariance() - all.covariance()).abs().max().item<double>() < 1e-12 * scale);
  CHECK(frechet_distance(merged, all) < 1e-12);
}

TEST_CASE("Frechet statistics: Fortran-order float64 arrays are transposed back", "[metrics][io]") {
  // sigma = [[1, 2, 3], [4, 5, 6], [7, 8, 9]] stored column by column.
  const fs::path p = scratch("fortran.npz");
  write_zip(p, {{"mu.npy", npy_f8({1, 2, 3}, "(3,)")},
                {"sigma.npy", npy_f8({1, 4, 7, 2, 5, 8, 3, 6, 9}, "(3, 3)", true)}});
  const StatsFile f = read_stats_npz(p.string());
  CHECK(at::equal(f.sigma, at::arange(1, 10, at::kDouble).reshape({3, 3})));
  CHECK(f.count == -1);
}

TEST_CASE("Frechet statistics: bad files are refused with the file and the problem named",
          "[metrics][io]") {
  const std::vector<double> mu3 = {0.5, -1, 2};
  const std::vector<double> eye3 = {1, 0, 0, 0, 1, 0, 0, 0, 1};

  SECTION("missing file") {
    const std::string p = scratch("absent.npz").string();
    CHECK_THROWS_AS(read_stats_npz(p), std::invalid_argument);
    CHECK_THROWS_WITH(read_stats_npz(p),
                      Catch::Contains("absent.npz") && Catch::Contains("cannot open"));
  }
  SECTION("not a zip archive") {
    const fs::path p = scratch("text.npz");
    write_text(p, "mu,sigma\n1,2\n");
    CHECK_THROWS_AS(read_stats_npz(p.string()), std::invalid_argument);
    CHECK_THROWS_WITH(read_stats_npz(p.string()),
                      Catch::Contains("text.npz") && Catch::Contains("not a zip"));
  }
  SECTION("no sigma: the keys that were found are listed") {
    const fs::path p = scratch("nosigma.npz");
    write_zip(p, {{"mu.npy", npy_f8(mu3, "(3,)")}, {"cov.npy", npy_f8(eye3, "(3, 3)")}});
    CHECK_THROWS_AS(read_stats_npz(p.string()), std::invalid_argument);
    CHECK_THROWS_WITH(read_stats_npz(p.string()), Catch::Contains("nosigma.npz") &&
                                                      Catch::Contains("missing 'sigma'") &&
                                                      Catch::Contains("'mu', 'cov'"));
  }
  SECTION("mu and sigma shapes disagree") {
    const fs::path p = scratch("shapes.npz");
    write_zip(p, {{"mu.npy", npy_f8(mu3, "(3,)")},
                  {"sigma.npy", npy_f8(std::vector<double>(16, 0.0), "(4, 4)")}});
    CHECK_THROWS_WITH(read_stats_npz(p.string()),
                      Catch::Contains("shapes.npz") &&
                          Catch::Contains("expected mu [d] and sigma [d, d]") &&
                          Catch::Contains("mu [3] and sigma [4, 4]"));
  }
  SECTION("unsupported dtype int32 for mu") {
    const fs::path p = scratch("int32.npz");
    const std::vector<int32_t> mu = {1, 2, 3};
    write_zip(p, {{"mu.npy", npy("<i4", "(3,)", false, mu.data(), 12)},
                  {"sigma.npy", npy_f8(eye3, "(3, 3)")}});
    CHECK_THROWS_AS(read_stats_npz(p.string()), std::invalid_argument);
    CHECK_THROWS_WITH(read_stats_npz(p.string()), Catch::Contains("int32.npz") &&
                                                      Catch::Contains("unsupported dtype int32") &&
                                                      Catch::Contains("for mu"));
  }
  SECTION("non-finite values") {
    const fs::path p = scratch("nan.npz");
    write_zip(p, {{"mu.npy", npy_f8({0, std::nan(""), 1}, "(3,)")},
                  {"sigma.npy", npy_f8(eye3, "(3, 3)")}});
    CHECK_THROWS_WITH(read_stats_npz(p.string()),
                      Catch::Contains("nan.npz") && Catch::Contains("mu contains non-finite"));
  }
  SECTION("sigma entry holds less data than its header promises") {
    const fs::path p = scratch("short.npz");
    write_zip(p, {{"mu.npy", npy_f8(mu3, "(3,)")},
                  {"sigma.npy", npy_f8({1, 0, 0, 0, 1, 0, 0, 0}, "(3, 3)")}});
    CHECK_THROWS_WITH(read_stats_npz(p.string()), Catch::Contains("short.npz") &&
                                                      Catch::Contains("'sigma.npy'") &&
                                                      Catch::Contains("truncated"));
  }
  SECTION("bad .npy header") {
    const fs::path p = scratch("header.npz");
    std::string bad = npy_f8(eye3, "(3, 3)");
    bad.replace(bad.find("'shape'"), 7, "'shope'");
    write_zip(p, {{"mu.npy", npy_f8(mu3, "(3,)")}, {"sigma.npy", bad}});
    CHECK_THROWS_WITH(read_stats_npz(p.string()), Catch::Contains("header.npz") &&
                                                      Catch::Contains("'sigma.npy'") &&
                                                      Catch::Contains("bad .npy header"));
  }
  SECTION("truncated file") {
    const fs::path good = scratch("good.npz"), cut = scratch("cut.npz");
    write_stats_npz(good.string(), stats_of(features(10, 3, 4)));
    std::ifstream in(good, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    write_text(cut, bytes.substr(0, bytes.size() * 2 / 3));
    CHECK_THROWS_AS(read_stats_npz(cut.string()), std::invalid_argument);
    CHECK_THROWS_WITH(read_stats_npz(cut.string()),
                      Catch::Contains("cut.npz") && Catch::Contains("truncated"));
  }
  SECTION("negative sample count") {
    const fs::path p = scratch("negative.npz");
    const int64_t n = -3;
    write_zip(p, {{"mu.npy", npy_f8(mu3, "(3,)")},
                  {"sigma.npy", npy_f8(eye3, "(3, 3)")},
                  {"n.npy", npy("<i8", "()", false, &n, 8)}});
    CHECK_THROWS_WITH(read_stats_npz(p.string()),
                      Catch::Contains("negative.npz") && Catch::Contains("n >= 0, got -3"));
  }
}

TEST_CASE("Frechet statistics: write_stats_npz refuses too few samples and unwritable paths",
          "[metrics][io]") {
  CHECK_THROWS_AS(write_stats_npz(scratch("one.npz").string(), stats_of(features(1, 3, 5))),
                  std::invalid_argument);
  const std::string p = (scratch("no_such_dir") / "x.npz").string();
  CHECK_THROWS_AS(write_stats_npz(p, stats_of(features(5, 3, 5))), std::runtime_error);
  CHECK_THROWS_WITH(write_stats_npz(p, stats_of(features(5, 3, 5))),
                    Catch::Contains("x.npz") && Catch::Contains("cannot write"));
  CHECK_FALSE(fs::exists(p));
}
