// Stored and optimized time grids (schedules/time_grid.hpp, experiments/optimize_grid.hpp;
// docs/theory.md section 6.1): grid files round-trip and are checked (monotone, the run's ends
// and step count), a stored grid samples exactly like the grid it holds, the KL-optimal grid is
// uniform in atan(sigma~), and the optimizer is deterministic and never worse than its start.
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
