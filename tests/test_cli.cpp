// The sdekit command driven in-process: outputs, .npy files, and one test per kind of bad input.
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli_run.hpp"
#include "experiments/features.hpp"
#include "experiments/npy_io.hpp"
#include "models/gaussian_mixture.hpp"
#include "networks/guidance_classifiers.hpp"
#include "networks/loader.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/registry.hpp"

namespace fs = std::filesystem;
using namespace sdekit;

namespace {

fs::path scratch(const std::string& name) {
  // One folder per process: ctest runs test cases in parallel processes.
  const fs::path dir =
      fs::temp_directory_path() / ("sdekit_test_cli_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
}

// A hand-made .npy v1.0 file with the given header dict and raw payload (numpy's layout: magic,
// version, little-endian header length, header padded with spaces to a multiple of 64 bytes).
void write_raw_npy(const fs::path& p, const std::string& dict, const std::string& payload) {
  std::string header = dict;
  const size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  write_text(p, out + header + payload);
}
}  // namespace

TEST_CASE("sdekit list names every schedule, grid, sampler and model", "[cli]") {
  const CliRun r = cli({"list"});
  REQUIRE(r.rc == 0);
  for (const auto& s : schedule_registry()) CHECK_THAT(r.out, Catch::Contains(s.name));
  for (const auto& g : grid_registry()) CHECK_THAT(r.out, Catch::Contains(g.name));
  for (const auto& s : sampler_registry()) CHECK_THAT(r.out, Catch::Contains(s.name));
  CHECK_THAT(r.out, Catch::Contains("ring2d"));
  CHECK_THAT(r.out, Catch::Contains("gmm:FILE.json"));
}

TEST_CASE("help works on every subcommand", "[cli]") {
  for (const char* sub : {"list", "sample", "moments"}) {
    const CliRun r = cli({sub, "--help"});
    INFO(sub);
    CHECK(r.rc == 0);
    CHECK_THAT(r.out, Catch::Contains("--help"));
  }
  CHECK_THAT(cli({"sample", "--help"}).out, Catch::Contains("--x-init"));
}

TEST_CASE("help on every subcommand, and sdekit list shows every registry entry", "[cli]") {
  const std::vector<std::vector<std::string>> subs = {{"list"},
                                                      {"sample"},
                                                      {"encode"},
                                                      {"moments"},
                                                      {"converge"},
                                                      {"fid-table"},
                                                      {"train"},
                                                      {"classifier"},
                                                      {"fd"},
                                                      {"distill"},
                                                      {"distill", "consistency"},
                                                      {"distill", "progressive"}};
  for (auto args : subs) {
    args.push_back("--help");
    const CliRun r = cli(args);
    INFO(args[0] << (args.size() > 2 ? " " + args[1] : std::string()));
    CHECK(r.rc == 0);
    CHECK_THAT(r.out, Catch::Contains("--help"));
  }
  // The top-level help names every subcommand.
  const CliRun top = cli({"--help"});
  for (const auto& sub : subs) CHECK_THAT(top.out, Catch::Contains(sub[0]));

  const CliRun r = cli({"list"});
  REQUIRE(r.rc == 0);
  // Every model kind, including the learned ones.
  for (const char* kind : {"ring2d", "gmm64", "gmm:", "fmnist", "net:", "cm:", "torchscript:"})
    CHECK_THAT(r.out, Catch::Contains(kind));
  for (const auto& k : model_kinds()) CHECK_THAT(r.out, Catch::Contains(k.name));
  for (const auto& c : classifier_kinds()) {
    CHECK_THAT(r.out, Catch::Contains(c.name));
    CHECK_THAT(cli({"sample", "--help"}).out, Catch::Contains(c.name));
  }
  for (const auto& f : feature_space_kinds()) {
    CHECK_THAT(r.out, Catch::Contains(f.name));
    CHECK_THAT(cli({"fid-table", "--help"}).out, Catch::Contains(f.name));
  }
  // Every sampler with the options it takes, and every option with its meaning.
  for (const auto& s : sampler_registry()) {
    INFO(s.name);
    CHECK_THAT(r.out, Catch::Contains(s.name));
    if (!s.options.empty())
      CHECK_THAT(r.out, Catch::Contains("options: " + sampler_option_list(s)));
  }
  for (const auto& o : sampler_option_specs()) {
    CHECK_THAT(r.out, Catch::Contains("--" + o.name));
    CHECK_THAT(r.out, Catch::Contains(o.meaning));
    // Every option is taken by some sampler, and `sample --help` offers it.
    bool taken = false;
    for (const auto& s : sampler_registry())
      for (const auto& name : s.options) taken = taken || name == o.name;
    CHECK(taken);
    CHECK_THAT(cli({"sample", "--help"}).out, Catch::Contains("--" + o.name));
  }
  // An unknown model names every kind.
  const CliRun bad = cli({"sample", "--model", "moons"});
  CHECK(bad.rc == 2);
  for (const auto& k : model_kinds()) CHECK_THAT(bad.err, Catch::Contains(k.name));
}

TEST_CASE("sampler option schema: defaults agree with SamplerOptions and parse back", "[cli]") {
  // Applying each option's declared default to fresh options changes nothing.
  const SamplerOptions d;
  for (const auto& spec : sampler_option_specs()) {
    if (spec.type == "flag") continue;
    INFO("--" << spec.name << " " << spec.default_value);
    SamplerOptions o;
    spec.apply(o, spec.default_value);
    CHECK(o.eta == d.eta);
    CHECK(o.variance == d.variance);
    CHECK(o.rtol == d.rtol);
    CHECK(o.atol == d.atol);
    CHECK(o.max_steps == d.max_steps);
    CHECK(o.unipc_variant == d.unipc_variant);
    CHECK(o.s_churn == d.s_churn);
    CHECK(o.s_tmin == d.s_tmin);
    CHECK(o.s_tmax == d.s_tmax);
    CHECK(o.s_noise == d.s_noise);
    CHECK(o.pc_predictor == d.pc_predictor);
    CHECK(o.corrector_steps == d.corrector_steps);
    CHECK(o.snr == d.snr);
    CHECK(o.langevin_steps == d.langevin_steps);
    CHECK(o.langevin_eps == d.langevin_eps);
  }
  // A given option reaches the sampler; a bad value names the option.
  CHECK(sampler_options_for("ddim", {{"eta", "0.5"}}).eta == 0.5);
  CHECK(sampler_options_for("dpmpp-3m", {{"dpmpp3m-reference", "true"}}).dpmpp3m_reference);
  CHECK_THROWS_WITH(sampler_options_for("ddim", {{"eta", "half"}}), Catch::Contains("--eta"));
  CHECK_THROWS_WITH(sampler_options_for("dopri5", {{"rtol", "-1"}}), Catch::Contains("--rtol"));
}

// Options that do not apply, and options that conflict: exit 2 with one line naming them.
namespace {
void check_refused(const std::vector<std::string>& args, const std::vector<std::string>& named) {
  const CliRun r = cli(args);
  CHECK(r.rc == 2);
  CHECK(r.out.empty());
  for (const auto& n : named) CHECK_THAT(r.err, Catch::Contains(n));
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}
}  // namespace

TEST_CASE("sample --sampler heun --eta 0.5 is refused: heun takes no --eta", "[cli]") {
  check_refused({"sample", "--sampler", "heun", "--eta", "0.5"}, {"--eta", "heun", "none"});
  // ddim takes it.
  CHECK(cli({"sample", "--sampler", "ddim", "--eta", "0.5", "--steps", "4", "--n", "8"}).rc == 0);
}

TEST_CASE("sample --sampler dpmpp-2m --dpmpp3m-reference is refused: the option is dpmpp-3m's",
          "[cli]") {
  check_refused({"sample", "--sampler", "dpmpp-2m", "--dpmpp3m-reference"},
                {"--dpmpp3m-reference", "dpmpp-2m"});
  check_refused({"encode", "--sampler", "dpmpp-2m", "--dpmpp3m-reference"},
                {"--dpmpp3m-reference", "dpmpp-2m"});
  CHECK(cli({"sample", "--sampler", "dpmpp-3m", "--dpmpp3m-reference", "--steps", "4", "--n", "8"})
            .rc == 0);
}

TEST_CASE("sample --steps 3 --nfe 5: the two conflict", "[cli]") {
  check_refused({"sample", "--steps", "3", "--nfe", "5"}, {"--steps 3", "--nfe 5", "conflict"});
  check_refused({"encode", "--steps", "3", "--nfe", "5"}, {"--steps 3", "--nfe 5", "conflict"});
  CHECK(cli({"sample", "--nfe", "6", "--n", "8"}).rc == 0);
}

TEST_CASE("sample --nfe: a budget is spent exactly or the summary says why not", "[cli]") {
  // dpm-solver-fast and dpm-solver-2 spend any budget exactly (7 is not 3K - 1, 5 is odd).
  CliRun r = cli({"sample", "--sampler", "dpm-solver-fast", "--nfe", "7", "--n", "4"});
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("NFE 7,"));
  r = cli({"sample", "--sampler", "dpm-solver-2", "--nfe", "5", "--n", "4"});
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("3 steps") && Catch::Contains("NFE 5,"));
  // dpm-solver-3 cannot spend 5: one step of 3 NFE, and the line says so.
  r = cli({"sample", "--sampler", "dpm-solver-3", "--nfe", "5", "--n", "4"});
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("NFE 3 (--nfe 5 is not spent exactly") &&
                        Catch::Contains("dpm-solver-fast"));
}

TEST_CASE("sample --compat and --final-denoise: the reference conventions from the command line",
          "[cli]") {
  // k-diffusion's Karras grid with 0: n steps, the last to sigma = 0; Heun's NFE is 2n - 1.
  CliRun r = cli({"sample", "--sde", "edm", "--sampler", "heun", "--steps", "5", "--compat",
                  "k-diffusion", "--n", "4"});
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("5 steps (karras)") && Catch::Contains("-> sigma = 0") &&
                        Catch::Contains("NFE 9,"));
  r = cli(
      {"sample", "--sde", "edm", "--sampler", "heun", "--nfe", "9", "--final-denoise", "--n", "4"});
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("5 steps (karras)") && Catch::Contains("NFE 9,"));
  check_refused({"sample", "--sde", "edm", "--t-end", "0"}, {"--t-end", "--final-denoise"});
  check_refused({"sample", "--sde", "edm", "--steps", "1", "--final-denoise"},
                {"steps must be >= 2"});
  check_refused({"sample", "--compat", "comfy"}, {"comfy", "k-diffusion", "dpm-solver"});
  // The official singlestep rule: any budget exactly, N grid intervals in the official orders.
  r = cli({"sample", "--sampler", "dpm-solver-3", "--nfe", "10", "--grid", "uniform-t", "--compat",
           "dpm-solver", "--n", "4"});
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out,
             Catch::Contains("4 steps over 10 grid intervals") && Catch::Contains("NFE 10,"));
  // An explicit flag wins over the preset.
  r = cli({"sample", "--sampler", "dpm-solver-3", "--nfe", "10", "--compat", "dpm-solver",
           "--singlestep-rule", "sdekit", "--n", "4"});
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("NFE 9 (--nfe 10 is not spent exactly"));
  // Adaptive DPM-Solver++: model calls and the official count.
  r = cli({"sample", "--sampler", "dpmpp-23", "--compat", "dpm-solver", "--n", "8"});
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("attempted steps; the official count, 3 x attempts"));
}

TEST_CASE(
    "sample --sampler dpm-solver-12 --steps 10 is refused: adaptive samplers choose their steps",
    "[cli]") {
  check_refused({"sample", "--sampler", "dpm-solver-12", "--steps", "10"},
                {"--steps", "dpm-solver-12", "adaptive", "--rtol"});
  check_refused({"sample", "--sampler", "dopri5", "--grid", "uniform-lambda"},
                {"--grid", "dopri5"});
  check_refused({"sample", "--sampler", "dopri5", "--nfe", "20"}, {"--nfe", "dopri5"});
  // Its own options are fine, and the summary reports the steps it took, not a grid.
  const CliRun r = cli({"sample", "--sampler", "dpm-solver-12", "--rtol", "1e-3", "--n", "8"});
  CHECK(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("adaptive steps"));
  CHECK_THAT(r.out, !Catch::Contains("uniform-t"));
}

TEST_CASE("sdekit sample writes a .npy batch that reads back as written", "[cli][npy]") {
  const fs::path out = scratch("x0.npy");
  const CliRun r = cli({"sample", "--model", "ring2d", "--sde", "vp-linear", "--sampler", "heun",
                        "--steps", "10", "--n", "50", "--seed", "3", "--out", out.string()});
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("NFE 20"));
  const at::Tensor x = read_npy(out.string());
  CHECK(x.sizes() == at::IntArrayRef({50, 2}));
  CHECK(x.scalar_type() == at::kFloat);
  CHECK(at::isfinite(x).all().item<bool>());

  // float64 and the same seed twice: identical files.
  const fs::path a = scratch("a.npy"), b = scratch("b.npy");
  for (const auto& p : {a, b})
    REQUIRE(cli({"sample", "--sampler", "euler-maruyama", "--n", "20", "--steps", "5", "--dtype",
                 "float64", "--seed", "9", "--out", p.string()})
                .rc == 0);
  const at::Tensor xa = read_npy(a.string()), xb = read_npy(b.string());
  CHECK(xa.scalar_type() == at::kDouble);
  CHECK(at::equal(xa, xb));
}

TEST_CASE("x-init starts the sampler from the given points", "[cli][npy]") {
  const fs::path init = scratch("xT.npy"), out = scratch("from_init.npy");
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(1);
  const at::Tensor xT = at::randn({7, 2}, g, at::kDouble);
  write_npy(init.string(), xT);
  REQUIRE(cli({"sample", "--sampler", "rk4", "--steps", "8", "--dtype", "float64", "--x-init",
               init.string(), "--out", out.string()})
              .rc == 0);
  // The same run through the library.
  const SDEPtr sde = make_sde("vp-linear");
  GaussianMixtureModel model(GaussianMixture::ring2d(), sde->schedule());
  SampleRequest req;
  req.model = &model;
  req.sde = sde.get();
  req.times = make_time_grid(GridKind::UniformT, *sde->schedule(), 8, 1.0, 1e-3);
  req.x_init = xT;
  const at::Tensor expected = make_sampler("rk4")->run(req).x;
  CHECK(at::allclose(read_npy(out.string()), expected, 1e-12, 1e-12));
}

TEST_CASE("sample --plot: a scatter for 2-D samples, an image grid for square ones",
          "[cli][plot]") {
  const fs::path png = scratch("ring.png");
  const CliRun r = cli({"sample", "--steps", "10", "--n", "300", "--plot", png.string()});
  INFO(r.err);
  REQUIRE(r.rc == 0);
  CHECK(fs::exists(scratch("ring.gp")));  // the script is written with or without gnuplot
  if (std::system("command -v gnuplot > /dev/null 2>&1") == 0) CHECK(fs::file_size(png) > 1000);
  // gmm64: D = 64 = 8 x 8, so 64 samples become an 8 x 8 grid of 8 x 8 tiles with 2 px padding.
  const fs::path grid = scratch("grid.png");
  REQUIRE(cli({"sample", "--model", "gmm64", "--steps", "10", "--n", "70", "--plot", grid.string()})
              .rc == 0);
  std::ifstream f(grid, std::ios::binary);
  std::string head(24, '\0');
  f.read(head.data(), 24);
  auto be32 = [&](int at) {
    return (static_cast<unsigned char>(head[at]) << 24) |
           (static_cast<unsigned char>(head[at + 1]) << 16) |
           (static_cast<unsigned char>(head[at + 2]) << 8) |
           static_cast<unsigned char>(head[at + 3]);
  };
  CHECK(head.substr(1, 3) == "PNG");
  CHECK(be32(16) == 8 * 8 + 7 * 2);
  CHECK(be32(20) == 8 * 8 + 7 * 2);
  // D = 3 is neither.
  const fs::path mix = scratch("three.json");
  write_text(mix, R"({"weights": [1], "means": [[0, 0, 0]], "stds": [1]})");
  const CliRun bad =
      cli({"sample", "--model", "gmm:" + mix.string(), "--plot", scratch("x.png").string()});
  CHECK(bad.rc == 2);
  CHECK_THAT(bad.err, Catch::Contains("--plot") && Catch::Contains("D = 3"));
}

TEST_CASE("sdekit moments prints one row per sampler and the exact-sample floor", "[cli]") {
  const CliRun r = cli({"moments", "--n", "200", "--steps", "5", "--samplers", "euler,ddim"});
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("| euler "));
  CHECK_THAT(r.out, Catch::Contains("| ddim "));
  CHECK_THAT(r.out, Catch::Contains("exact samples"));
}

// ---- bad input: exit code 2 and a message naming the problem -------------------------------

TEST_CASE("bad input: unknown names list the valid ones", "[cli][errors]") {
  CliRun r = cli({"sample", "--sampler", "nope"});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("unknown sampler 'nope'") && Catch::Contains("heun"));
  r = cli({"sample", "--sde", "vpp"});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("unknown SDE/schedule 'vpp'") && Catch::Contains("vp-linear"));
  r = cli({"sample", "--model", "moons"});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("unknown model 'moons'") && Catch::Contains("gmm64"));
  r = cli({"sample", "--grid", "log"});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("unknown time grid 'log'") && Catch::Contains("karras"));
  r = cli({"sample", "--dtype", "int8"});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("dtype 'int8'") && Catch::Contains("float64"));
  r = cli({"moments", "--samplers", "euler,bogus"});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("unknown sampler 'bogus'"));
}

TEST_CASE("bad input: steps <= 0 and t-end outside (0, T)", "[cli][errors]") {
  CliRun r = cli({"sample", "--steps", "0"});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("--steps must be >= 1, got 0"));
  r = cli({"sample", "--steps", "-3"});
  CHECK(r.rc == 2);
  r = cli({"sample", "--t-end", "1.5"});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("--t-end must lie in (0, 1)"));
  r = cli({"sample", "--t-end", "0"});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("--t-end"));
  r = cli({"sample", "--n", "0"});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("--n must be >= 1"));
}

TEST_CASE("bad input: malformed or inconsistent mixture JSON names the file and field",
          "[cli][errors]") {
  const fs::path bad = scratch("bad.json"), uneven = scratch("uneven.json");
  write_text(bad, "{\"weights\": [0.5, 0.5], \"means\": [[0, 0], [1, 1]");
  CliRun r = cli({"sample", "--model", "gmm:" + bad.string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains(bad.string()) && Catch::Contains("malformed JSON"));
  write_text(uneven, R"({"weights": [0.5, 0.4], "means": [[0, 0], [1, 1]], "stds": [1, 1]})");
  r = cli({"sample", "--model", "gmm:" + uneven.string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains(uneven.string()) && Catch::Contains("'weights'") &&
                        Catch::Contains("sum to 1"));
  r = cli({"sample", "--model", "gmm:" + scratch("missing.json").string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("missing.json"));
}

TEST_CASE("bad input: .npy of the wrong shape, dtype, layout or length", "[cli][errors][npy]") {
  const fs::path wide = scratch("wide.npy");
  write_npy(wide.string(), at::zeros({4, 3}, at::kFloat));
  CliRun r = cli({"sample", "--x-init", wide.string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("expected shape [n, 2]") && Catch::Contains("[4, 3]"));

  const fs::path ints = scratch("ints.npy");
  write_raw_npy(ints, "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 2), }",
                std::string(32, '\0'));
  r = cli({"sample", "--x-init", ints.string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("expected dtype float32 or float64") && Catch::Contains("<i8"));

  const fs::path fortran = scratch("fortran.npy");
  write_raw_npy(fortran, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }",
                std::string(32, '\0'));
  r = cli({"sample", "--x-init", fortran.string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("Fortran"));

  const fs::path shortf = scratch("short.npy");
  write_raw_npy(shortf, "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 2), }",
                std::string(40, '\0'));
  r = cli({"sample", "--x-init", shortf.string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("truncated"));

  const fs::path text = scratch("text.npy");
  write_text(text, "not a numpy file");
  r = cli({"sample", "--x-init", text.string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("not a valid .npy file"));

  r = cli({"sample", "--x-init", scratch("absent.npy").string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("cannot open .npy file"));

  const fs::path rows = scratch("rows.npy");
  write_npy(rows.string(), at::zeros({5, 2}, at::kDouble));
  r = cli({"sample", "--x-init", rows.string(), "--n", "6"});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("--n 6 disagrees"));
}

TEST_CASE("bad input: an unwritable --out fails before any sampling", "[cli][errors]") {
  const CliRun r = cli({"sample", "--out", (scratch("no_such_dir") / "x.npy").string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("--out") && Catch::Contains("cannot open for writing"));
  CHECK(r.out.empty());
}

TEST_CASE("npy round trip keeps shape and dtype and bits in numpy's header layout", "[npy]") {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(4);
  for (const auto dt : {at::kFloat, at::kDouble}) {
    const at::Tensor x = at::randn({3, 2, 5}, g, dt);
    const fs::path p = scratch("rt.npy");
    write_npy(p.string(), x);
    const at::Tensor y = read_npy(p.string());
    CHECK(y.scalar_type() == dt);
    CHECK(at::equal(x, y));
    std::ifstream f(p, std::ios::binary);
    std::string head(10, '\0');
    f.read(head.data(), 10);
    CHECK(head.substr(0, 6) == "\x93NUMPY");
    const size_t hlen =
        static_cast<unsigned char>(head[8]) | (static_cast<unsigned char>(head[9]) << 8);
    CHECK((10 + hlen) % 16 == 0);  // numpy aligns the data start
    std::string dict(hlen, '\0');
    f.read(dict.data(), static_cast<std::streamsize>(hlen));
    CHECK_THAT(dict, Catch::Contains(dt == at::kFloat ? "'<f4'" : "'<f8'") &&
                         Catch::Contains("(3, 2, 5)"));
  }
}

TEST_CASE("sdekit distill: consistency and progressive distillation from the command line",
          "[cli][distill]") {
  // A few steps of each method from the committed two-moons teacher; the outputs load and sample
  // with the samplers the commands name, and an integrator refuses the consistency model.
  const fs::path dir = scratch("distill");
  const std::string teacher =
      "net:" + (fs::path(sdekit_data_dir()) / "toy" / "two_moons_mlp.pt").string();
  const std::string cm_dir = (dir / "cm").string(), pd_dir = (dir / "pd").string();
  CliRun r = cli({"distill", "consistency", "--teacher", teacher, "--steps", "4", "--batch", "32",
                  "--out", cm_dir, "--quiet"});
  INFO(r.err);
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("--model cm:" + cm_dir + "/model.pt --sampler consistency"));
  const std::string cm = "cm:" + cm_dir + "/model.pt";
  r = cli({"sample", "--model", cm, "--sampler", "consistency", "--steps", "2", "--grid", "karras",
           "--n", "16", "--out", (dir / "cm.npy").string(), "--plot", (dir / "cm.png").string()});
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK(read_npy((dir / "cm.npy").string()).sizes() == at::IntArrayRef({16, 2}));
  // 2-D samples without an exact density: a scatter over their kernel density estimate.
  CHECK(fs::exists(dir / "cm.png"));
  CHECK(fs::file_size(dir / "cm.png") > 1000);
  r = cli({"sample", "--model", cm, "--sampler", "ddim", "--n", "4"});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("sample it with the 'consistency' sampler"));

  r = cli({"distill", "progressive", "--teacher", teacher, "--teacher-steps", "4",
           "--steps-per-round", "3", "--batch", "32", "--out", pd_dir, "--quiet"});
  INFO(r.err);
  REQUIRE(r.rc == 0);
  CHECK(fs::exists(dir / "pd" / "student_2.pt"));
  CHECK(fs::exists(dir / "pd" / "student_1.pt"));
  CHECK(fs::exists(dir / "pd" / "progressive.json"));
  r = cli({"sample", "--model", "net:" + pd_dir + "/student_1.pt", "--sampler", "ddim", "--steps",
           "1", "--n", "8", "--out", (dir / "pd.npy").string()});
  CHECK(r.rc == 0);
  r = cli(
      {"distill", "progressive", "--teacher", teacher, "--teacher-steps", "6", "--out", pd_dir});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("power of 2"));
}

TEST_CASE(
    "threads: --threads sizes LibTorch's pool on every command and keeps OpenBLAS at one thread",
    "[cli][threads]") {
  CliRun r = cli({"sample", "--threads", "1", "--steps", "2", "--n", "4"});
  INFO(r.err);
  REQUIRE(r.rc == 0);
  CHECK(at::get_num_threads() == 1);
  using GetThreads = int (*)();
  if (auto* get = reinterpret_cast<GetThreads>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads")))
    if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) CHECK(get() == 1);
  r = cli({"moments", "--threads", "2", "--samplers", "euler", "--steps", "2", "--n", "8"});
  REQUIRE(r.rc == 0);
  CHECK(at::get_num_threads() == 2);
  for (const auto& cmd : {"sample", "encode", "moments", "converge", "fid-table", "train",
                          "classifier", "fd", "list"}) {
    const CliRun h = cli({cmd, "--help"});
    CHECK(h.rc == 0);
    CHECK_THAT(h.out, Catch::Contains("--threads"));
  }
  const CliRun h = cli({"distill", "consistency", "--help"});
  CHECK_THAT(h.out, Catch::Contains("--threads"));
  const CliRun bad = cli({"sample", "--threads", "-2"});
  CHECK(bad.rc == 2);
  CHECK_THAT(bad.err, Catch::Contains("--threads"));
}

TEST_CASE("sample --noise replays the draws, too few blocks names how many the run draws",
          "[cli][noise]") {
  // euler-maruyama with 10 steps draws 10 blocks of [n, D].
  const fs::path dir = scratch("noise");
  fs::create_directories(dir);
  const std::vector<std::string> base = {
      "sample", "--model", "ring2d", "--sampler", "euler-maruyama", "--steps",
      "10",     "--n",     "4",      "--dtype",   "float64"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return cli(args);
  };
  write_npy((dir / "ten.npy").string(), at::zeros({10, 4, 2}, at::kDouble));
  write_npy((dir / "six.npy").string(), at::zeros({6, 4, 2}, at::kDouble));
  write_npy((dir / "wide.npy").string(), at::zeros({10, 5, 2}, at::kDouble));
  CliRun r = with({"--noise", (dir / "ten.npy").string()});
  INFO(r.err);
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("noise blocks used 10 of 10"));
  r = with({"--noise", (dir / "six.npy").string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("six.npy") && Catch::Contains("holds 6 blocks") &&
                        Catch::Contains("draws 10"));
  r = with({"--noise", (dir / "wide.npy").string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("wide.npy") && Catch::Contains("[K, 4, 2]"));
  r = with({"--noise", (dir / "ten.npy").string(), "--brownian"});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("--noise and --brownian"));
  r = cli({"sample", "--sampler", "heun", "--noise", (dir / "ten.npy").string()});
  CHECK(r.rc == 2);
  CHECK_THAT(r.err, Catch::Contains("--noise") && Catch::Contains("deterministic"));
}

TEST_CASE("classifier guidance on the command line: sample, fid-table, converge",
          "[cli][guidance]") {
  const auto ok =
      cli({"sample", "--model", "ring2d", "--sampler", "dpmpp-2m", "--steps", "20", "--n", "2000",
           "--dtype", "float64", "--classifier", "exact", "--class", "3"});
  REQUIRE(ok.rc == 0);
  CHECK_THAT(ok.out, Catch::Contains("classifier guidance: exact (ring2d components), scale 1, "
                                     "class 3") &&
                         Catch::Contains("NFE 20, classifier calls 20"));
  // The moments are checked against component 3, the exact target at scale 1.
  CHECK_THAT(ok.out, Catch::Contains("mean error"));
  const auto scale_alone = cli({"sample", "--model", "ring2d", "--classifier-scale", "2"});
  CHECK(scale_alone.rc == 2);
  CHECK_THAT(scale_alone.err, Catch::Contains("--classifier-scale requires --classifier"));
  const auto bad_class =
      cli({"sample", "--model", "gmm64", "--classifier", "exact", "--class", "5", "--n", "4"});
  CHECK(bad_class.rc == 2);
  CHECK_THAT(bad_class.err, Catch::Contains("--class must lie in [0, 4]"));
  const std::string dir =
      (std::filesystem::temp_directory_path() / "sdekit_cli_guided_fid").string();
  std::filesystem::remove_all(dir);
  const auto fid =
      cli({"fid-table", "--model",      "ring2d", "--samplers", "dpmpp-2m", "--nfe",
           "8",         "--n",          "200",    "--n-ref",    "400",      "--kid-subsets",
           "2",         "--classifier", "exact",  "--class",    "1",        "--out",
           dir,         "--quiet"});
  REQUIRE(fid.rc == 0);
  CHECK_THAT(fid.out, Catch::Contains("Classifier guidance: exact, scale 1, class 1") &&
                          Catch::Contains("ring2d component 1"));
  std::filesystem::remove_all(dir);
  const auto fid_bad = cli({"fid-table", "--model", "ring2d", "--samplers", "dpmpp-2m", "--nfe",
                            "8", "--classifier-scale", "2", "--out", dir, "--quiet"});
  CHECK(fid_bad.rc == 2);
  CHECK_THAT(fid_bad.err, Catch::Contains("set the field 'classifier'"));
  const auto conv = cli({"converge", "--model", "ring2d", "--samplers", "dpmpp-2m", "--nfe",
                         "4,8,16", "--n", "16", "--classifier", "exact", "--class", "0",
                         "--classifier-scale", "2", "--out", dir + "_c", "--quiet"});
  CHECK(conv.rc == 0);
  std::filesystem::remove_all(dir + "_c");
  const auto init_alone = cli({"classifier", "--init", "x.pt"});
  CHECK(init_alone.rc == 2);
  CHECK_THAT(init_alone.err, Catch::Contains("add --noisy"));
}

TEST_CASE("sample --sde flow --shift: the shifted schedule, other SDEs refuse --shift", "[cli]") {
  const CliRun r =
      cli({"sample", "--model", "ring2d", "--sde", "flow", "--shift", "3", "--sampler", "dpmpp-2m",
           "--steps", "10", "--n", "16", "--out",
           (std::filesystem::temp_directory_path() / "sdekit_flow_shift.npy").string()});
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("flow:shift=3"));
  const CliRun bad = cli({"sample", "--sde", "vp-linear", "--shift", "3"});
  CHECK(bad.rc == 2);
  CHECK_THAT(bad.err, Catch::Contains("--shift") && Catch::Contains("vp-linear"));
  const CliRun neg = cli({"sample", "--sde", "flow", "--shift", "-1"});
  CHECK(neg.rc == 2);
  CHECK_THAT(neg.err, Catch::Contains("--shift"));
}
