// Stored and optimized time grids (schedules/time_grid.hpp, experiments/optimize_grid.hpp;
// docs/theory.md section 6.1): grid files round-trip and are checked (monotone, the run's ends
// and step count), a stored grid samples exactly like the grid it holds, the KL-optimal grid is
// uniform in atan(sigma~), the beta, linear-quadratic and Align Your Steps grids follow their
// published definitions, and the optimizer is deterministic and never worse than its start.
#include <boost/math/special_functions/beta.hpp>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "experiments/optimize_grid.hpp"
#include "models/gaussian_mixture.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/registry.hpp"
#include "solvers/sample.hpp"

using namespace sdekit;
namespace fs = std::filesystem;

namespace {
std::string scratch_file(const std::string& name, const std::string& text = "") {
  const fs::path p = fs::temp_directory_path() / ("sdekit_grid_" + name);
  if (!text.empty()) std::ofstream(p) << text;
  return p.string();
}
}  // namespace

TEST_CASE("grid files: round trip, checks against the run, bad files named", "[grid]") {
  const SchedulePtr k = make_schedule("vp-linear");
  const std::vector<double> g = make_time_grid(GridKind::UniformLambda, *k, 8, 1.0, 1e-3);
  const std::string path = scratch_file("ok.json");
  write_grid_file(path, g, "vp-linear", R"({"note": "test"})");
  CHECK(read_grid_file(path) == g);
  const GridChoice c = parse_grid_choice("file:" + path);
  CHECK(c.kind == GridKind::File);
  CHECK(c.file == path);
  GridOptions o;
  o.file = path;
  CHECK(make_time_grid(GridKind::File, *k, 8, 1.0, 1e-3, o) == g);
  CHECK_THROWS_WITH(make_time_grid(GridKind::File, *k, 10, 1.0, 1e-3, o),
                    Catch::Contains("holds 8 steps") && Catch::Contains("10"));
  CHECK_THROWS_WITH(make_time_grid(GridKind::File, *k, 8, 1.0, 2e-3, o),
                    Catch::Contains("ends at") && Catch::Contains("--t-end"));
  CHECK_THROWS_WITH(make_time_grid(GridKind::File, *k, 8, 0.9, 1e-3, o),
                    Catch::Contains("starts at"));
  CHECK_THROWS_WITH(
      parse_grid("file:" + scratch_file("up.json", R"({"times": [1, 0.5, 0.7, 0.001]})")),
      Catch::Contains("decrease strictly") && Catch::Contains("times[2]"));
  CHECK_THROWS_WITH(parse_grid("file:" + scratch_file("bad.json", "{times")),
                    Catch::Contains("not JSON"));
  CHECK_THROWS_WITH(parse_grid("file:" + scratch_file("none.json", R"({"t": [1, 0.1]})")),
                    Catch::Contains("\"times\""));
  CHECK_THROWS_WITH(parse_grid("file:" + scratch_file("nan.json", R"({"times": [1, "x"]})")),
                    Catch::Contains("times[1]"));
  CHECK_THROWS_WITH(parse_grid("file:/nonexistent/grid.json"), Catch::Contains("cannot read"));
}

TEST_CASE("a stored grid samples exactly like the grid it holds", "[grid]") {
  const SDEPtr sde = make_sde("vp-linear");
  GaussianMixtureModel model(GaussianMixture::ring2d(), sde->schedule());
  const std::vector<double> g =
      make_time_grid(GridKind::Quadratic, *sde->schedule(), 12, 1.0, sde->default_t_end());
  const std::string path = scratch_file("q.json");
  write_grid_file(path, g, "vp-linear");
  SampleSpec a;
  a.steps = 12;
  a.n = 32;
  a.event_shape = {2};
  a.options = at::kDouble;
  a.grid = GridKind::Quadratic;
  SampleSpec b = a;
  b.grid = GridKind::File;
  b.grid_file = path;
  const auto s = make_sampler("dpmpp-2m");
  CHECK(at::equal(sample(*s, model, *sde, a).x, sample(*s, model, *sde, b).x));
}

TEST_CASE("the KL-optimal grid is uniform in atan(sigma~)", "[grid]") {
  for (const char* name : {"vp-linear", "edm", "flow"}) {
    const SchedulePtr k = make_schedule(name);
    const double T = k->domain().hi, e = k->default_t_end();
    const auto g = make_time_grid(GridKind::KlOptimal, *k, 10, T, e);
    const double a = std::atan(std::exp(-k->lambda(T))), b = std::atan(std::exp(-k->lambda(e)));
    for (int i = 0; i <= 10; ++i) {
      INFO(name << " i = " << i);
      CHECK(std::atan(std::exp(-k->lambda(g[size_t(i)]))) ==
            Approx(a + (b - a) * i / 10.0).epsilon(1e-9).margin(1e-12));
    }
  }
}

TEST_CASE("the beta grid sits at the Beta(0.6, 0.6) quantiles, symmetric about the middle",
          "[grid]") {
  const SchedulePtr k = make_schedule("flow");
  const double T = 0.9, e = 0.01;
  for (int N : {1, 2, 7, 10}) {
    const auto g = make_time_grid(GridKind::Beta, *k, N, T, e);
    REQUIRE(g.size() == size_t(N) + 1);
    CHECK(g.front() == T);
    CHECK(g.back() == e);
    for (int i = 0; i <= N; ++i) {
      INFO("N = " << N << ", i = " << i);
      const double q = (g[size_t(i)] - e) / (T - e);
      // The regularized incomplete beta function (the CDF) at the node is 1 - i/N.
      CHECK(boost::math::ibeta(0.6, 0.6, q) == Approx(1.0 - double(i) / N).margin(1e-12));
      // Beta(a, a) is symmetric: node N - i mirrors node i.
      const double qm = (g[size_t(N - i)] - e) / (T - e);
      CHECK(q + qm == Approx(1.0).margin(1e-12));
    }
  }
  // Beta(0.6, 0.6) puts more nodes near both ends than a uniform grid: the first step is
  // shorter than 1/N of the range.
  const auto g = make_time_grid(GridKind::Beta, *k, 10, T, e);
  CHECK(g[0] - g[1] < 0.5 * (T - e) / 10);
  CHECK(g[9] - g[10] < 0.5 * (T - e) / 10);
}

TEST_CASE("the linear-quadratic grid: linear to 2.5% over half the steps, then a tangent quadratic",
          "[grid]") {
  const SchedulePtr k = make_schedule("flow");
  const double T = 0.999, e = 1e-3;
  for (int N : {2, 3, 8, 10, 25, 50}) {
    INFO("N = " << N);
    const auto g = make_time_grid(GridKind::LinearQuadratic, *k, N, T, e);
    REQUIRE(g.size() == size_t(N) + 1);
    std::vector<double> v(g.size());
    for (size_t i = 0; i < g.size(); ++i) v[i] = (T - g[i]) / (T - e);
    const int L = N / 2;
    for (int i = 0; i <= L; ++i) CHECK(v[size_t(i)] == Approx(0.025 * i / L).margin(1e-13));
    CHECK(v[size_t(N)] == 1.0);
    if (N - L >= 2) {
      // A quadratic in i on [L, N]: constant second differences ...
      const double c2 = v[size_t(L) + 2] - 2 * v[size_t(L) + 1] + v[size_t(L)];
      for (int i = L; i + 2 <= N; ++i)
        CHECK(v[size_t(i) + 2] - 2 * v[size_t(i) + 1] + v[size_t(i)] == Approx(c2).margin(1e-12));
      // ... whose slope at i = L is the linear part's, 0.025 / L.
      CHECK(v[size_t(L) + 1] - v[size_t(L)] - c2 / 2 == Approx(0.025 / L).margin(1e-12));
    }
  }
  const auto one = make_time_grid(GridKind::LinearQuadratic, *k, 1, T, e);
  CHECK(one == std::vector<double>{T, e});
}

TEST_CASE("vp-sd is Stable Diffusion's table, Align Your Steps' grids are its published sigmas",
          "[grid]") {
  const SchedulePtr k = make_schedule("vp-sd");
  REQUIRE(k->name() == "vp-sd");
  const double T = 1.0, e = k->default_t_end();
  auto sig = [&](double t) { return std::exp(-k->lambda(t)); };
  // Stable Diffusion's published sigma range (its k-diffusion wrapper's sigma_max, sigma_min).
  CHECK(sig(T) == Approx(14.6146412293).epsilon(1e-9));
  CHECK(sig(e) == Approx(0.0291671582).epsilon(1e-8));
  // The 10-step tables as Align Your Steps' project page publishes them.
  const std::vector<double> pub_sd1 = {14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520,
                                       1.8841921177,  1.3943805092, 0.9642583904, 0.6523686016,
                                       0.3977456272,  0.1515232662, 0.0291671582};
  const std::vector<double> pub_sdxl = {14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769,
                                        1.3405244945,  0.8620721141, 0.5550693289, 0.3798540708,
                                        0.2332364134,  0.1114188177, 0.0291671582};
  const std::vector<double> pub_svd = {700.00, 54.5,  15.886, 7.977, 4.248, 1.789,
                                       0.981,  0.403, 0.173,  0.034, 0.002};
  CHECK(ays_table(GridKind::AysSvd) == pub_svd);
  for (GridKind kind : {GridKind::AysSd1, GridKind::AysSdxl}) {
    const std::vector<double>& tab = kind == GridKind::AysSd1 ? pub_sd1 : pub_sdxl;
    CHECK(ays_table(kind) == tab);
    const auto g10 = make_time_grid(kind, *k, 10, T, e);
    CHECK(g10.front() == T);
    CHECK(g10.back() == e);
    for (int i = 1; i < 10; ++i) {
      INFO(grid_name(kind) << " i = " << i);
      CHECK(sig(g10[size_t(i)]) == Approx(tab[size_t(i)]).epsilon(1e-9));
    }
    // 20 steps: the table's nodes and, between them, their geometric means (log-linear).
    const auto g20 = make_time_grid(kind, *k, 20, T, e);
    for (int i = 1; i < 20; ++i) {
      INFO(grid_name(kind) << " 20 steps, i = " << i);
      const double want =
          i % 2 == 0 ? tab[size_t(i / 2)] : std::sqrt(tab[size_t(i / 2)] * tab[size_t(i / 2) + 1]);
      CHECK(sig(g20[size_t(i)]) == Approx(want).epsilon(1e-9));
    }
    // 5 steps: every other node of the table.
    const auto g5 = make_time_grid(kind, *k, 5, T, e);
    for (int i = 1; i < 5; ++i)
      CHECK(sig(g5[size_t(i)]) == Approx(tab[size_t(2 * i)]).epsilon(1e-9));
  }
  // A run over another sigma range is refused, naming the table's range and the run's.
  const SchedulePtr vp = make_schedule("vp-linear");
  CHECK_THROWS_WITH(make_time_grid(GridKind::AysSd1, *vp, 10, 1.0, 1e-3),
                    Catch::Contains("14.6146") && Catch::Contains("vp-sd"));
  CHECK_THROWS_WITH(make_time_grid(GridKind::AysSd1, *k, 10, T, 0.05),
                    Catch::Contains("0.0291672"));
  CHECK_THROWS_WITH(make_time_grid(GridKind::AysSvd, *k, 10, T, e), Catch::Contains("700"));
}

TEST_CASE("optimize-grid: deterministic, never worse than its start, better on held-out rows",
          "[grid][optimize]") {
  OptimizeGridSpec s;
  s.model = "gmm64";
  // The per-row errors are heavy-tailed (rare x_T near the boundary between two modes, where the
  // PF-ODE map is steep, dominate the RMS), so the held-out batch is large.
  s.sampler = "ipndm-v";
  s.nfe = 10;
  s.n_calib = 64;
  s.n_test = 1024;
  s.max_evals = 200;
  if (!optimize_grid_available()) {  // a build without NLopt (the CUDA machine's) says so
    CHECK_THROWS_WITH(optimize_grid(s), Catch::Contains("without NLopt"));
    return;
  }
  const OptimizeGridReport a = optimize_grid(s), b = optimize_grid(s);
  CHECK(a.times == b.times);
  REQUIRE(a.times.size() == 11);
  CHECK(a.times.front() == 1.0);
  CHECK(a.times.back() == 1e-3);
  REQUIRE(a.scores.size() >= 2);
  CHECK(a.scores[0].grid == "optimized");
  CHECK(a.scores[1].grid == "uniform-lambda");
  INFO("optimized " << a.scores[0].calib_rms << " / " << a.scores[0].test_rms << ", uniform-lambda "
                    << a.scores[1].calib_rms << " / " << a.scores[1].test_rms);
  CHECK(a.scores[0].calib_rms <= a.scores[1].calib_rms);
  CHECK(a.scores[0].test_rms < a.scores[1].test_rms);
  // The written file is a grid file of the same times.
  const std::string path = scratch_file("opt.json");
  write_optimized_grid(a, path);
  CHECK(read_grid_file(path) == a.times);
  OptimizeGridSpec bad = s;
  bad.sampler = "euler-maruyama";
  CHECK_THROWS_WITH(optimize_grid(bad), Catch::Contains("field 'sampler'"));
  bad = s;
  bad.init = "file:x.json";
  CHECK_THROWS_WITH(optimize_grid(bad), Catch::Contains("init"));
}
