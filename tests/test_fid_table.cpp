// NFE-vs-FD tables: reference sources and floors, feature networks (TorchScript), statistics
// files, resume, and bad input.
#include <torch/script.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_run.hpp"
#include "experiments/features.hpp"
#include "experiments/fid_table.hpp"
#include "experiments/frechet.hpp"
#include "experiments/npy_io.hpp"
#include "experiments/stats_io.hpp"
#include "models/gaussian_mixture.hpp"
#include "networks/loader.hpp"
#include "schedules/registry.hpp"

namespace fs = std::filesystem;
using namespace sdekit;

namespace {

fs::path scratch(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("sdekit_test_fid_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path p = dir / name;
  fs::remove_all(p);
  return p;
}

std::size_t count_lines(const fs::path& p) {
  std::ifstream in(p);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

FidTableSpec small_spec() {
  FidTableSpec s;
  s.model = "ring2d";
  s.samplers = {"ddim", "heun"};
  s.nfe = {4, 20};
  s.n = 400;
  s.n_ref = 2000;
  s.kid_subsets = 10;
  s.kid_subset_size = 200;
  return s;
}

// A TorchScript module with the given forward body, saved to `path`.
void save_module(const fs::path& path, const std::string& forward) {
  torch::jit::Module m("Features");
  m.define("def forward(self, x):\n    " + forward + "\n");
  m.save(path.string());
}

struct Interrupt {};

}  // namespace

TEST_CASE("fid-table: floors, reference sources and statistics files agree", "[fid][reference]") {
  const fs::path dir = scratch("ref");
  const FidTableSpec spec = small_spec();
  const FidTableReport rep = run_fid_table(spec, (dir / "mixture").string(), false);
  REQUIRE(rep.cells.size() == 4);
  REQUIRE(rep.feature_dim == 2);
  // The floor: 400 further exact samples against 2000 reference samples. For Gaussians the
  // expected FD of such sets is about tr(C) (1/n + 1/n_ref) plus the square-root bias, so the
  // floor must be small and positive.
  INFO("floor FD " << rep.floor_fd << ", KID " << rep.floor_kid << " +- " << rep.floor_kid_se);
  CHECK(rep.floor_fd > 0);
  CHECK(rep.floor_fd < 0.05);
  CHECK(std::abs(rep.floor_kid) < 4.5 * rep.floor_kid_se + 1e-3);
  // Heun at 20 NFE is far better than DDIM at 4: its FD sits near the floor, DDIM's far above.
  double ddim4 = 0, heun20 = 0;
  for (const auto& c : rep.cells) {
    INFO(c.key() << ": FD " << c.fd << ", KID " << c.kid << " +- " << c.kid_se);
    CHECK(c.failure.empty());
    CHECK(std::isfinite(c.fd));
    if (c.key() == "ddim/nfe=4") ddim4 = c.fd;
    if (c.key() == "heun/nfe=20") heun20 = c.fd;
  }
  CHECK(ddim4 > 10 * rep.floor_fd);
  CHECK(heun20 < 5 * rep.floor_fd);

  // The cell's statistics file and the reference's reproduce the cell's FD.
  const StatsFile cell = read_stats_npz((dir / "mixture" / "stats" / "heun_nfe_20.npz").string());
  const StatsFile ref = read_stats_npz((dir / "mixture" / "reference_stats.npz").string());
  CHECK(cell.count == spec.n);
  CHECK(ref.count == spec.n_ref);
  CHECK(frechet_distance(cell.mu, cell.sigma, ref.mu, ref.sigma) == Approx(heun20).epsilon(1e-9));
  const CliRun fd = cli({"fd", (dir / "mixture" / "stats" / "heun_nfe_20.npz").string(),
                         (dir / "mixture" / "reference_stats.npz").string()});
  REQUIRE(fd.rc == 0);
  CHECK(std::stod(fd.out) == Approx(heun20).epsilon(1e-8));

  // The same reference as a stats file: identical FD values, no KID, no floor.
  FidTableSpec from_stats = spec;
  from_stats.reference = "stats:" + (dir / "mixture" / "reference_stats.npz").string();
  const FidTableReport rs = run_fid_table(from_stats, (dir / "stats").string(), false);
  for (std::size_t i = 0; i < rs.cells.size(); ++i) {
    CHECK(rs.cells[i].fd == Approx(rep.cells[i].fd).epsilon(1e-9));
    CHECK(std::isnan(rs.cells[i].kid));
  }
  CHECK(std::isnan(rs.floor_fd));
  CHECK_THAT(fid_protocol(rs), Catch::Contains("not available"));

  // A data set as .npy: exact samples; the floor is n random rows against the other rows.
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(11);
  const SDEPtr sde = make_sde("vp-linear");
  const double t = sde->default_t_end();
  const at::Tensor data = GaussianMixture::ring2d().sample(
      1000, sde->schedule()->alpha(t), sde->schedule()->sigma(t), g, at::kDouble);
  write_npy((dir / "data.npy").string(), data);
  FidTableSpec from_npy = spec;
  from_npy.reference = "npy:" + (dir / "data.npy").string();
  const FidTableReport rn = run_fid_table(from_npy, (dir / "npy").string(), false);
  CHECK(rn.reference_rows == 1000);
  CHECK(rn.floor_fd > 0);
  CHECK(rn.floor_fd < 0.1);
  CHECK_THAT(fid_protocol(rn), Catch::Contains("against its other 600 rows"));
}

TEST_CASE("fid-table: TorchScript feature networks and their output shape", "[fid][features]") {
  const fs::path dir = scratch("ts");
  fs::create_directories(dir);
  save_module(dir / "double.pt", "return torch.cat([x, 2.0 * x[:, :1]], 1)");
  save_module(dir / "scalar.pt", "return x.sum()");
  save_module(dir / "flat.pt", "return x[:, 0]");
  const auto f = make_feature_space("torchscript:" + (dir / "double.pt").string(), 3);
  const at::Tensor x = at::randn({7, 2}, at::kDouble);
  const at::Tensor y = (*f)(x);  // batches of 3 rows: 3 + 3 + 1
  REQUIRE(y.sizes() == at::IntArrayRef({7, 3}));
  CHECK(at::allclose(y.narrow(1, 0, 2), x.to(at::kFloat).to(at::kDouble)));
  CHECK(at::allclose(y.select(1, 2), 2.0 * x.select(1, 0).to(at::kFloat).to(at::kDouble)));

  CHECK_THROWS_WITH((*make_feature_space("torchscript:" + (dir / "scalar.pt").string()))(x),
                    Catch::Contains("expected output [7, d]") && Catch::Contains("got []"));
  CHECK_THROWS_WITH((*make_feature_space("torchscript:" + (dir / "flat.pt").string()))(x),
                    Catch::Contains("expected output [7, d]") && Catch::Contains("got [7]"));
  CHECK_THROWS_WITH(make_feature_space("torchscript:" + (dir / "missing.pt").string()),
                    Catch::Contains("missing.pt") && Catch::Contains("cannot load"));
  CHECK_THROWS_WITH(make_feature_space("inception"), Catch::Contains("unknown feature space"));

  // In a table: the features' dimension is reported; a bad network fails before any cell runs.
  FidTableSpec spec = small_spec();
  spec.samplers = {"heun"};
  spec.nfe = {20};
  spec.features = "torchscript:" + (dir / "double.pt").string();
  const FidTableReport rep = run_fid_table(spec, (dir / "good").string(), false);
  CHECK(rep.feature_dim == 3);
  CHECK(std::isfinite(rep.cells[0].fd));
  spec.features = "torchscript:" + (dir / "flat.pt").string();
  CHECK_THROWS_WITH(run_fid_table(spec, (dir / "bad").string(), false),
                    Catch::Contains("flat.pt") && Catch::Contains("expected output"));
}

TEST_CASE("fid-table: an interrupted table resumes to the uninterrupted one", "[fid][resume]") {
  const FidTableSpec spec = small_spec();
  const fs::path whole = scratch("whole"), parts = scratch("parts");
  const FidTableReport ref = run_fid_table(spec, whole.string(), false);
  CHECK_THROWS_AS(run_fid_table(spec, parts.string(), false,
                                [](const FidProgress& p) {
                                  if (!p.cell.empty() && p.done == 2) throw Interrupt{};
                                }),
                  Interrupt);
  REQUIRE(count_lines(parts / "results.jsonl") == 2);
  const FidTableReport res = run_fid_table(spec, parts.string(), false);
  CHECK(res.resumed == 2);
  CHECK(res.computed == 2);
  CHECK(fid_markdown(res) == fid_markdown(ref));
  FidTableSpec other = spec;
  other.n = 300;
  CHECK_THROWS_WITH(run_fid_table(other, parts.string(), false),
                    Catch::Contains("n: stored 400, now 300"));
}

TEST_CASE("sdekit fid-table: output, JSON, and bad input", "[fid][cli][errors]") {
  const fs::path dir = scratch("cli");
  const std::vector<std::string> base = {
      "fid-table", "--model", "ring2d",  "--samplers", "ddim,heun", "--nfe", "4,20",
      "--n",       "300",     "--n-ref", "1000",       "--quiet",   "--out", dir.string()};
  CliRun r = cli(base);
  INFO(r.err);
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("Frechet distance") && Catch::Contains("Floor: FD") &&
                        Catch::Contains("Features: data"));
  CHECK(count_lines(dir / "results.jsonl") == 4);
  std::vector<std::string> js = base;
  js.push_back("--json");
  r = cli(js);
  REQUIRE(r.rc == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["computed"] == 0);
  CHECK(j["protocol"]["n"] == 300);
  CHECK(j["cells"][0]["features"] == "data");

  // Bad input.
  r = cli({"fid-table", "--reference", "stats:" + (dir / "nope.npz").string(), "--out",
           (dir / "x").string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("nope.npz") && Catch::Contains("does not exist"));
  {
    std::ofstream f(dir / "broken.npz");
    f << "not a zip";
  }
  r = cli({"fid-table", "--model", "ring2d", "--samplers", "heun", "--nfe", "4", "--n", "50",
           "--reference", "stats:" + (dir / "broken.npz").string(), "--quiet", "--out",
           (dir / "y").string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("broken.npz"));
  r = cli({"fid-table", "--nfe", "0", "--out", (dir / "z").string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("--nfe") && Catch::Contains("got 0"));
  r = cli({"fid-table", "--samplers", "heun,nope", "--out", (dir / "z").string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("unknown sampler 'nope'"));
  r = cli({"fid-table", "--features", "inception", "--out", (dir / "z").string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("features") && Catch::Contains("inception"));
  {
    std::ofstream f(dir / "spec.json");
    f << R"({"model": "ring2d", "n": "many"})";
  }
  r = cli({"fid-table", "--spec", (dir / "spec.json").string(), "--out", (dir / "z").string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("spec.json") && Catch::Contains("'n'") &&
                        Catch::Contains("expected an integer"));
}

TEST_CASE("fid-table: a toy reference draws exact noised samples of the toy set",
          "[fid][reference]") {
  // The committed two-moons teacher at 20 NFE against toy:two-moons (4000 exact samples at
  // t_end). The floor (400 further exact samples) must be small, and the teacher's cell must be
  // close to it: FD below 0.1 (measured about 0.02 at this n; the data's variances are 3.0 and
  // 1.0, so a wrong reference set, e.g. the un-noised ring2d, scores above 1).
  const fs::path dir = scratch("toy_reference");
  FidTableSpec spec = small_spec();
  spec.model = "net:" + (fs::path(sdekit_data_dir()) / "toy" / "two_moons_mlp.pt").string();
  spec.reference = "toy:two-moons";
  spec.samplers = {"dpmpp-2m"};
  spec.nfe = {20};
  spec.n_ref = 4000;
  const FidTableReport rep = run_fid_table(spec, (dir / "ok").string(), false);
  INFO("floor " << rep.floor_fd << ", cell " << rep.cells.at(0).fd);
  CHECK(rep.floor_fd < 0.05);
  CHECK(rep.cells.at(0).fd < 0.1);
  CHECK_THAT(rep.reference, Catch::Contains("toy set two-moons"));
  spec.reference = "toy:no-such-set";
  CHECK_THROWS_WITH(run_fid_table(spec, (dir / "bad").string(), false),
                    Catch::Contains("unknown toy data set 'no-such-set'"));
  spec.reference = "toy:two-moons";
  spec.model = "gmm64";
  CHECK_THROWS_WITH(run_fid_table(spec, (dir / "bad2").string(), false),
                    Catch::Contains("toy data sets are 2-D"));
}

TEST_CASE("fid-table spec: every field declared once reads, writes and has its flag",
          "[fid][spec]") {
  FidTableSpec s;
  s.model = "ring2d";
  s.samplers = {"heun"};
  s.nfe = {4, 9};
  s.n = 50;
  s.seed = 3;
  s.grid = "uniform-t";
  s.n_ref = 60;
  s.kid_subsets = 3;
  s.kid_subset_size = 10;
  const std::string text = fid_spec_json(s);
  const nlohmann::json j = nlohmann::json::parse(text);
  const CliRun help = cli({"fid-table", "--help"});
  std::size_t written = 0;
  for (const auto& f : fid_spec_schema()) {
    written += f.written_when_set ? 0 : 1;
    if (!f.written_when_set) CHECK(j.contains(f.name));
    std::string flag = "--" + f.name;
    std::replace(flag.begin(), flag.end(), '_', '-');
    CHECK_THAT(help.out, Catch::Contains(flag + " "));
  }
  CHECK(j.size() == written);
  const FidTableSpec back = fid_spec_from_json(text, "round-trip");
  CHECK(fid_spec_json(back) == text);
  CHECK(back.seed == 3);
  CHECK(back.kid_subset_size == 10);
}
