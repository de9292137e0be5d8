// Plots: image grids decoded back pixel by pixel, gnuplot plots' files and PNG headers, and the
// behaviour without gnuplot (a PATH without it) or with a gnuplot that fails.
#include <stb/stb_image.h>
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "apps/plot.hpp"
#include "models/gaussian_mixture.hpp"

namespace fs = std::filesystem;
using namespace sdekit;

namespace {

// A fresh folder per test case, removed with everything in it at the end.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path = fs::temp_directory_path() / ("sdekit_test_plot_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(stamp) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// Sets PATH for the lifetime of the object and restores the previous value.
struct ScopedPath {
  std::optional<std::string> saved;
  explicit ScopedPath(const std::string& value) {
    if (const char* old = std::getenv("PATH")) saved = old;
    ::setenv("PATH", value.c_str(), 1);
  }
  ~ScopedPath() {
    if (saved)
      ::setenv("PATH", saved->c_str(), 1);
    else
      ::unsetenv("PATH");
  }
};

bool have_gnuplot() {
  return std::system("command -v gnuplot >/dev/null 2>&1") == 0;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct PngHeader {
  bool valid = false;
  uint32_t width = 0, height = 0;
};

// The 8-byte PNG signature, then the IHDR chunk: length 13, type, big-endian width and height.
PngHeader png_header(const std::string& path) {
  const std::string b = read_file(path);
  PngHeader h;
  if (b.size() < 24 || b.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0 || b.compare(12, 4, "IHDR") != 0)
    return h;
  auto be32 = [&](size_t at) {
    return (uint32_t(uint8_t(b[at])) << 24) | (uint32_t(uint8_t(b[at + 1])) << 16) |
           (uint32_t(uint8_t(b[at + 2])) << 8) | uint32_t(uint8_t(b[at + 3]));
  };
  h.valid = be32(8) == 13;
  h.width = be32(16);
  h.height = be32(20);
  return h;
}

struct Decoded {
  int w = 0, h = 0, c = 0;
  std::vector<unsigned char> px;
  int at(int x, int y, int ch = 0) const { return px[static_cast<size_t>((y * w + x) * c + ch)]; }
};

Decoded decode(const std::string& path) {
  Decoded d;
  unsigned char* data = stbi_load(path.c_str(), &d.w, &d.h, &d.c, 0);
  REQUIRE(data != nullptr);
  d.px.assign(data, data + static_cast<size_t>(d.w) * d.h * d.c);
  stbi_image_free(data);
  return d;
}

// Data blocks of a .dat file: "x y" rows, blocks separated by blank lines, '#' lines skipped.
std::vector<std::vector<std::pair<double, double>>> read_blocks(const std::string& path) {
  std::vector<std::vector<std::pair<double, double>>> blocks;
  std::istringstream in(read_file(path));
  bool fresh = true;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) {
      fresh = true;
      continue;
    }
    if (line[0] == '#') continue;
    if (fresh) blocks.emplace_back();
    fresh = false;
    std::istringstream row(line);
    double x, y;
    row >> x >> y;
    blocks.back().emplace_back(x, y);
  }
  return blocks;
}

std::vector<Series> three_series() {
  std::vector<Series> s;
  const std::vector<double> nfe{10, 20, 40, 80, 160};
  for (int p = 1; p <= 3; ++p) {
    Series se{"order " + std::to_string(p), nfe, {}};
    for (double n : nfe) se.y.push_back(std::pow(n / 10.0, -p));
    s.push_back(se);
  }
  return s;
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Image grids

TEST_CASE("image grid of grey tiles has the expected size and pixel values", "[plot]") {
  TempDir dir;
  // 5 tiles of 2 x 3 pixels in 3 columns with 2 pixels of padding: 2 rows, 13 x 6 pixels.
  at::Tensor img = at::zeros({5, 1, 2, 3}, at::kDouble);
  img[0].fill_(-1.0);
  img[1].fill_(1.0);
  img[2].fill_(0.0);
  img[3].fill_(0.5);
  img[4].fill_(-1.0);
  img[4][0][0][0] = -7.0;  // clamped to 0
  img[4][0][1][2] = 9.0;   // clamped to 255
  img[4][0][0][1] = -0.5;
  const std::string path = dir / "grid.png";
  write_image_grid_png(path, img, 3, 2);
  const Decoded d = decode(path);
  CHECK(d.w == 13);
  CHECK(d.h == 6);
  CHECK(d.c == 1);
  auto tile = [&](int k, int x, int y) { return d.at((k % 3) * 5 + x, (k / 3) * 4 + y); };
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x) {
      CHECK(tile(0, x, y) == 0);
      CHECK(tile(1, x, y) == 255);
      CHECK(tile(2, x, y) == 128);
      CHECK(tile(3, x, y) == 191);  // (0.5 + 1) / 2 * 255 = 191.25
    }
  CHECK(tile(4, 0, 0) == 0);
  CHECK(tile(4, 1, 0) == 64);  // 63.75
  CHECK(tile(4, 2, 1) == 255);
  CHECK(tile(4, 0, 1) == 0);
  // Padding columns 3-4 and 8-9, padding rows 2-3, and the empty last cell are background.
  for (int y = 0; y < 6; ++y)
    for (int x : {3, 4, 8, 9}) CHECK(d.at(x, y) == 255);
  for (int x = 0; x < 13; ++x)
    for (int y : {2, 3}) CHECK(d.at(x, y) == 255);
  for (int y = 4; y < 6; ++y)
    for (int x = 10; x < 13; ++x) CHECK(d.at(x, y) == 255);
}

TEST_CASE("image grid of RGB tiles keeps the channels and honours lo and hi", "[plot]") {
  TempDir dir;
  at::Tensor img = at::empty({2, 3, 1, 1}, at::kFloat);
  img[0][0][0][0] = 0.0f;   // with [lo, hi] = [0, 1]: 0
  img[0][1][0][0] = 0.5f;   // 127.5 -> 128
  img[0][2][0][0] = 1.0f;   // 255
  img[1][0][0][0] = 0.2f;   // 51
  img[1][1][0][0] = 2.0f;   // clamped to 255
  img[1][2][0][0] = -1.0f;  // clamped to 0
  const std::string path = dir / "rgb.png";
  write_image_grid_png(path, img, 0, 1, 0.0, 1.0);  // 0 columns: ceil(sqrt(2)) = 2
  const Decoded d = decode(path);
  REQUIRE(d.w == 3);
  REQUIRE(d.h == 1);
  REQUIRE(d.c == 3);
  CHECK(d.at(0, 0, 0) == 0);
  CHECK(d.at(0, 0, 1) == 128);
  CHECK(d.at(0, 0, 2) == 255);
  for (int ch = 0; ch < 3; ++ch) CHECK(d.at(1, 0, ch) == 255);
  CHECK(d.at(2, 0, 0) == 51);
  CHECK(d.at(2, 0, 1) == 255);
  CHECK(d.at(2, 0, 2) == 0);
}

TEST_CASE("image grid picks about sqrt(n) columns and caps columns at n", "[plot]") {
  TempDir dir;
  const at::Tensor img = at::zeros({10, 1, 4, 5});
  write_image_grid_png(dir / "auto.png", img);  // 4 columns, 3 rows, padding 2
  Decoded d = decode(dir / "auto.png");
  CHECK(d.w == 4 * 5 + 3 * 2);
  CHECK(d.h == 3 * 4 + 2 * 2);
  write_image_grid_png(dir / "wide.png", img, 50, 0);  // one row of 10
  d = decode(dir / "wide.png");
  CHECK(d.w == 50);
  CHECK(d.h == 4);
  write_image_grid_png(dir / "column.png", img, 1, 3);
  d = decode(dir / "column.png");
  CHECK(d.w == 5);
  CHECK(d.h == 10 * 4 + 9 * 3);
}

TEST_CASE("image grid from flat rows with an explicit image shape", "[plot]") {
  TempDir dir;
  const at::Tensor rows = at::linspace(-1, 1, 4 * 6, at::kDouble).reshape({4, 6});
  write_image_grid_png(dir / "flat.png", rows, {2, 3}, 2, 1);
  write_image_grid_png(dir / "shaped.png", rows.reshape({4, 1, 2, 3}), 2, 1);
  const Decoded a = decode(dir / "flat.png"), b = decode(dir / "shaped.png");
  CHECK(a.w == 7);
  CHECK(a.h == 5);
  CHECK(a.px == b.px);
  CHECK(a.at(0, 0) == 0);
  CHECK(a.at(6, 4) == 255);
  write_image_grid_png(dir / "flat_rgb.png", at::zeros({2, 12}), {3, 2, 2}, 0, 0);
  CHECK(decode(dir / "flat_rgb.png").c == 3);
}

TEST_CASE("image grid rejects bad shapes, NaN and bad ranges naming the problem", "[plot]") {
  TempDir dir;
  const std::string path = dir / "bad.png";
  CHECK_THROWS_WITH(write_image_grid_png(path, at::zeros({2, 2, 3, 3})),
                    Catch::Contains("[n, C, H, W]") && Catch::Contains("[2, 2, 3, 3]"));
  CHECK_THROWS_WITH(write_image_grid_png(path, at::zeros({3, 4})), Catch::Contains("[3, 4]"));
  CHECK_THROWS_WITH(write_image_grid_png(path, at::zeros({0, 1, 2, 2})),
                    Catch::Contains("[0, 1, 2, 2]"));
  CHECK_THROWS_AS(write_image_grid_png(path, at::zeros({3, 4})), std::invalid_argument);
  CHECK_THROWS_WITH(write_image_grid_png(path, at::zeros({4, 5}), {2, 3}),
                    Catch::Contains("[n, 6]") && Catch::Contains("[4, 5]"));
  CHECK_THROWS_WITH(write_image_grid_png(path, at::zeros({4, 8}), {2, 2, 2}),
                    Catch::Contains("[2, 2, 2]"));
  at::Tensor nan = at::zeros({1, 1, 2, 2});
  nan[0][0][1][1] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(write_image_grid_png(path, nan), Catch::Contains("NaN"));
  CHECK_THROWS_AS(write_image_grid_png(path, at::zeros({1, 1, 2, 2}), 0, 2, 1.0, 1.0),
                  std::invalid_argument);
  CHECK_THROWS_AS(write_image_grid_png(path, at::zeros({1, 1, 2, 2}), -1), std::invalid_argument);
  CHECK_FALSE(fs::exists(path));
}

TEST_CASE("image grid names the path when it cannot be written", "[plot]") {
  TempDir dir;
  { std::ofstream(dir / "file") << "x"; }
  const std::string under_file = dir / "file/grid.png";
  CHECK_THROWS_AS(write_image_grid_png(under_file, at::zeros({1, 1, 2, 2})), std::runtime_error);
  CHECK_THROWS_WITH(write_image_grid_png(under_file, at::zeros({1, 1, 2, 2})),
                    Catch::Contains(under_file));
  fs::create_directories(dir.path / "folder.png");
  CHECK_THROWS_WITH(write_image_grid_png(dir / "folder.png", at::zeros({1, 1, 2, 2})),
                    Catch::Contains("folder.png"));
}

// ------------------------------------------------------------------------------------------
// Log-log plots

TEST_CASE("plot_loglog writes the data, the script and a PNG of the documented size", "[plot]") {
  TempDir dir;
  const auto series = three_series();
  const PlotResult r =
      plot_loglog(dir / "conv.png", "error vs NFE", "NFE", "error", series, {1, 2}, 1e-3);
  CHECK(r.png == dir / "conv.png");
  CHECK(r.script == dir / "conv.gp");
  const std::string script = read_file(r.script);
  CHECK_THAT(script, Catch::Contains("'conv.dat'"));
  CHECK_THAT(script, Catch::Contains("O(NFE^-1)"));
  CHECK_THAT(script, Catch::Contains("O(NFE^-2)"));
  CHECK_THAT(script, Catch::Contains("reference floor"));
  CHECK_THAT(script, Catch::Contains("set logscale xy"));
  CHECK_THAT(script, !Catch::Contains(dir.path.string()));  // relative names only

  const auto blocks = read_blocks(dir / "conv.dat");
  REQUIRE(blocks.size() == 3);
  for (size_t b = 0; b < 3; ++b) {
    REQUIRE(blocks[b].size() == 5);
    for (size_t k = 0; k < 5; ++k) {
      CHECK(blocks[b][k].first == series[b].x[k]);
      CHECK(blocks[b][k].second == series[b].y[k]);
    }
  }
  CHECK_THAT(read_file(dir / "conv.dat"), Catch::Contains("# series: order 2"));

  if (!have_gnuplot()) {
    WARN("gnuplot is not installed: PNG checks skipped");
    CHECK_FALSE(r.rendered);
    return;
  }
  CHECK(r.rendered);
  INFO(r.message);
  const PngHeader h = png_header(r.png);
  CHECK(h.valid);
  CHECK(h.width == 1000);
  CHECK(h.height == 600);
  CHECK_THAT(r.message, Catch::Contains("terminal png"));
}

TEST_CASE("plot_loglog skips non-positive and non-finite points and empty series", "[plot]") {
  TempDir dir;
  std::vector<Series> series = three_series();
  series[1].y[1] = 0.0;
  series[1].y[3] = -2.0;
  series[2].y[0] = std::numeric_limits<double>::quiet_NaN();
  series[2].x[4] = 0.0;
  series.push_back({"all zero", {10, 20}, {0, 0}});
  series.push_back({"empty", {}, {}});
  const PlotResult r = plot_loglog(dir / "skip.png", "t", "NFE", "err", series, {}, 0);
  const auto blocks = read_blocks(dir / "skip.dat");
  REQUIRE(blocks.size() == 3);
  CHECK(blocks[0].size() == 5);
  REQUIRE(blocks[1].size() == 3);
  CHECK(blocks[1][0].second == series[1].y[0]);
  CHECK(blocks[1][1].second == series[1].y[2]);
  CHECK(blocks[1][2].second == series[1].y[4]);
  REQUIRE(blocks[2].size() == 3);
  CHECK(blocks[2][0].first == 20);
  CHECK(blocks[2][2].first == 80);
  CHECK_THAT(r.message, Catch::Contains("skipped 6"));
  CHECK_THAT(r.message, Catch::Contains("'all zero'"));
  CHECK_THAT(read_file(r.script), !Catch::Contains("reference floor"));
  CHECK_THAT(read_file(r.script), !Catch::Contains("O(NFE"));
  if (have_gnuplot()) {
    CHECK(r.rendered);
    CHECK(png_header(r.png).valid);
  }
}

TEST_CASE("plot_loglog with many series grows the PNG for the legend", "[plot]") {
  TempDir dir;
  std::vector<Series> series;
  for (int i = 0; i < 30; ++i) {
    // Labels of 40 and 41 characters: the PNG widens by 7 pixels per character beyond 24.
    Series se{"sampler-" + std::to_string(i) + " / grid uniform-lambda, eta 0.5", {}, {}};
    for (double n : {8.0, 16.0, 32.0, 64.0, 128.0}) {
      se.x.push_back(n);
      se.y.push_back((1 + 0.1 * i) * std::pow(n, -1.0 - 0.1 * i));
    }
    series.push_back(se);
  }
  const PlotResult r =
      plot_loglog(dir / "many.png", "30 samplers", "NFE", "W2 error", series, {1, 2, 3}, 1e-6);
  CHECK(read_blocks(dir / "many.dat").size() == 30);
  if (!have_gnuplot()) return;
  CHECK(r.rendered);
  const PngHeader h = png_header(r.png);
  CHECK(h.valid);
  CHECK(h.width == 1000 + 7 * (41 - 24));
  CHECK(h.height == 140 + 17 * (30 + 3 + 1));
}

TEST_CASE("plot paths with spaces and quotes are passed safely", "[plot]") {
  TempDir dir;
  const std::string png = dir / "it's a folder/new sub/conv plot.png";
  const PlotResult r = plot_loglog(png, "it's", "NFE", "err", three_series(), {1});
  CHECK(r.script == dir / "it's a folder/new sub/conv plot.gp");
  CHECK(read_blocks(dir / "it's a folder/new sub/conv plot.dat").size() == 3);
  if (!have_gnuplot()) return;
  INFO(r.message);
  CHECK(r.rendered);
  CHECK(png_header(png).valid);
}

TEST_CASE("plot_loglog rejects mismatched series and an all-empty plot", "[plot]") {
  TempDir dir;
  CHECK_THROWS_WITH(plot_loglog(dir / "a.png", "t", "x", "y", {{"bad", {1, 2, 3}, {1, 2}}}, {}),
                    Catch::Contains("'bad'") && Catch::Contains("3 x values but 2 y values"));
  CHECK_THROWS_AS(plot_loglog(dir / "a.png", "t", "x", "y", {{"zeros", {1, 2}, {0, -1}}}, {}),
                  std::invalid_argument);
  CHECK_THROWS_AS(plot_loglog(dir / "a.png", "t", "x", "y", {}, {}), std::invalid_argument);
}

// ------------------------------------------------------------------------------------------
// Scatter over log-density contours

TEST_CASE("plot_scatter_density rejects samples that are not [n, 2]", "[plot]") {
  TempDir dir;
  auto logp = [](double x, double y) { return -0.5 * (x * x + y * y); };
  CHECK_THROWS_WITH(plot_scatter_density(dir / "s.png", "t", at::zeros({10, 3}), logp),
                    Catch::Contains("[n, 2]") && Catch::Contains("[10, 3]"));
  CHECK_THROWS_AS(plot_scatter_density(dir / "s.png", "t", at::zeros({10}), logp),
                  std::invalid_argument);
  CHECK_THROWS_AS(plot_scatter_density(dir / "s.png", "t", at::zeros({0, 2}), logp),
                  std::invalid_argument);
  CHECK_THROWS_AS(plot_scatter_density(dir / "s.png", "t", at::randn({5, 2}), logp, 1),
                  std::invalid_argument);
  const GaussianMixture ring = GaussianMixture::ring2d();
  CHECK_THROWS_WITH(plot_scatter_density(dir / "s.png", "t", at::zeros({4, 3}), ring, 1.0, 0.0),
                    Catch::Contains("[4, 3]"));
  CHECK_FALSE(fs::exists(dir / "s.gp"));
}

TEST_CASE("plot_scatter_density writes samples, density grid and a PNG", "[plot]") {
  TempDir dir;
  at::manual_seed(3);
  at::Tensor x = at::randn({500, 2}, at::kDouble);
  x[7][0] = std::numeric_limits<double>::infinity();
  int calls = 0;
  auto logp = [&](double a, double b) {
    ++calls;
    return -0.5 * (a * a + b * b);
  };
  const PlotResult r = plot_scatter_density(dir / "gauss.png", "standard normal", x, logp, 40);
  CHECK(calls == 40 * 40);
  const auto samples = read_blocks(dir / "gauss_samples.dat");
  REQUIRE(samples.size() == 1);
  REQUIRE(samples[0].size() == 499);
  CHECK(samples[0][0].first == x[0][0].item<double>());
  CHECK(samples[0][0].second == x[0][1].item<double>());
  CHECK(read_blocks(dir / "gauss_density.dat").size() == 40);
  CHECK_THAT(r.message, Catch::Contains("skipped 1 non-finite"));
  const std::string script = read_file(r.script);
  CHECK_THAT(script, Catch::Contains("'gauss_density.dat'"));
  CHECK_THAT(script, Catch::Contains("'gauss_samples.dat'"));
  CHECK_THAT(script, Catch::Contains("set size ratio -1"));
  if (!have_gnuplot()) return;
  CHECK(r.rendered);
  const PngHeader h = png_header(r.png);
  CHECK(h.valid);
  CHECK(h.width == 800);
  CHECK(h.height == 720);
}

TEST_CASE("plot_scatter_density of a mixture uses its noised log-density", "[plot]") {
  TempDir dir;
  const GaussianMixture ring = GaussianMixture::ring2d();
  const at::Tensor x = ring.sample(2000, 1.0, 0.0, at::make_generator<at::CPUGeneratorImpl>(5));
  const PlotResult r = plot_scatter_density(dir / "ring.png", "ring2d", x, ring, 1.0, 0.0, 50);
  // The density file's values are the mixture's log_prob at the grid points.
  std::istringstream in(read_file(dir / "ring_density.dat"));
  int rows = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream row(line);
    double a, b, lp;
    row >> a >> b >> lp;
    if (rows++ % 97 != 0) continue;
    const double expected =
        ring.log_prob(at::tensor({a, b}, at::kDouble).reshape({1, 2}), 1.0, 0.0).item<double>();
    CHECK(lp == Approx(expected).epsilon(1e-12).margin(1e-9));
  }
  CHECK(rows == 50 * 50);
  CHECK_THROWS_WITH(plot_scatter_density(dir / "g.png", "t", x, GaussianMixture::gmm64(), 1.0, 0.0),
                    Catch::Contains("2-dimensional"));
  if (have_gnuplot()) CHECK(r.rendered);
}

// ------------------------------------------------------------------------------------------
// Without gnuplot, and with a failing one

TEST_CASE("without gnuplot on PATH the plots write their scripts and report it", "[plot]") {
  TempDir dir;
  ScopedPath no_gnuplot("/nonexistent");
  const PlotResult a = plot_loglog(dir / "conv.png", "t", "NFE", "err", three_series(), {1});
  CHECK_FALSE(a.rendered);
  CHECK(fs::exists(a.script));
  CHECK(fs::exists(dir / "conv.dat"));
  CHECK_FALSE(fs::exists(a.png));
  CHECK_THAT(a.message, Catch::Contains("gnuplot-nox") && Catch::Contains("gnuplot conv.gp"));

  const PlotResult b = plot_scatter_density(
      dir / "s.png", "t", at::randn({50, 2}), [](double x, double y) { return -(x * x + y * y); },
      20);
  CHECK_FALSE(b.rendered);
  CHECK(fs::exists(b.script));
  CHECK(fs::exists(dir / "s_samples.dat"));
  CHECK(fs::exists(dir / "s_density.dat"));
  CHECK_THAT(b.message, Catch::Contains("gnuplot-nox") && Catch::Contains("gnuplot s.gp"));
}

TEST_CASE("a failing gnuplot raises its messages", "[plot]") {
  TempDir dir;
  fs::create_directories(dir.path / "bin");
  const std::string fake = dir / "bin/gnuplot";
  {
    std::ofstream f(fake);
    f << "#!/bin/sh\necho \"fake gnuplot: line 3: undefined variable\" >&2\nexit 1\n";
  }
  ::chmod(fake.c_str(), 0755);
  ScopedPath only_fake((dir.path / "bin").string());
  CHECK_THROWS_WITH(plot_loglog(dir / "conv.png", "t", "NFE", "err", three_series(), {1}),
                    Catch::Contains("undefined variable") && Catch::Contains("conv.gp"));
  CHECK_THROWS_AS(
      plot_scatter_density(
          dir / "s.png", "t", at::randn({20, 2}), [](double, double) { return 0.0; }, 10),
      std::runtime_error);
}
