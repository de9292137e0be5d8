// Hostile but fair input through the command line, one test per kind: valid TorchScript models
// that must work, files that must be refused before they run, integers that must not wrap,
// values that must not be ignored, sizes that must not start, errors that must name their cause,
// the exit-code contract (0 ok, 2 bad input or usage, 1 a failure during the run), results
// folders that two runs cannot corrupt, and noise flags that must hold what they promise.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <zip.h>
#include <catch2/catch.hpp>

#include <torch/script.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli_run.hpp"
#include "experiments/converge.hpp"
#include "experiments/frechet.hpp"
#include "experiments/npy_io.hpp"
#include "experiments/results_store.hpp"
#include "experiments/stats_io.hpp"
#include "models/gaussian_mixture.hpp"
#include "networks/loader.hpp"

namespace fs = std::filesystem;
using namespace sdekit;

namespace {

const fs::path kTorchScript = fs::path(SDEKIT_TEST_DATA) / "torchscript";

fs::path scratch(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("sdekit_test_robust_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
}

// A TorchScript module with the given forward signature and body, saved to `path`.
void save_module(const fs::path& path, const std::string& signature, const std::string& body) {
  torch::jit::Module m("M");
  m.define("def forward(self, " + signature + "):\n    " + body + "\n");
  m.save(path.string());
}

// Copies the zip archive `src` (a TorchScript module or a torch::save archive) to `dst` with the
// largest tensor record (a member under ".../data/") cut to `keep` of its bytes; the archive
// itself stays valid, so only the tensor's declared size tells that data are missing.
void truncate_tensor_record(const fs::path& src, const fs::path& dst, double keep) {
  fs::copy_file(src, dst, fs::copy_options::overwrite_existing);
  int err = 0;
  zip_t* za = zip_open(dst.c_str(), 0, &err);
  REQUIRE(za != nullptr);
  zip_int64_t best = -1;
  zip_uint64_t best_size = 0;
  for (zip_int64_t i = 0; i < zip_get_num_entries(za, 0); ++i) {
    zip_stat_t st;
    if (zip_stat_index(za, static_cast<zip_uint64_t>(i), 0, &st) != 0) continue;
    if (std::string(st.name).find("/data/") != std::string::npos && st.size > best_size) {
      best = i;
      best_size = st.size;
    }
  }
  REQUIRE(best >= 0);
  const auto cut = static_cast<zip_uint64_t>(keep * static_cast<double>(best_size));
  void* bytes = std::malloc(cut + 1);
  zip_file_t* f = zip_fopen_index(za, static_cast<zip_uint64_t>(best), 0);
  REQUIRE(f != nullptr);
  REQUIRE(zip_fread(f, bytes, cut) == static_cast<zip_int64_t>(cut));
  zip_fclose(f);
  zip_source_t* s = zip_source_buffer(za, bytes, cut, /*freep=*/1);
  REQUIRE(zip_file_replace(za, static_cast<zip_uint64_t>(best), s, 0) == 0);
  zip_set_file_compression(za, static_cast<zip_uint64_t>(best), ZIP_CM_STORE, 0);
  REQUIRE(zip_close(za) == 0);
}

// Exit code 2 and one line naming every given word.
void check_bad_input(const CliRun& r, const std::vector<std::string>& names) {
  INFO(r.err);
  CHECK(r.rc == 2);
  CHECK(r.err.rfind("error: ", 0) == 0);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  for (const auto& n : names) CHECK_THAT(r.err, Catch::Contains(n));
}

// A .npz statistics file with the given mu and sigma (written as float64).
void write_stats(const fs::path& p, const at::Tensor& mu, const at::Tensor& sigma) {
  GaussianStats g;
  g.add(at::randn({8, mu.size(0)}, at::kDouble));
  write_stats_npz(p.string(), g);
  // Rewrite the members with the given moments through the same zip layout.
  int err = 0;
  zip_t* za = zip_open(p.c_str(), 0, &err);
  REQUIRE(za != nullptr);
  auto put = [&](const char* name, const at::Tensor& t) {
    const fs::path tmp = scratch(std::string("member_") + name + ".npy");
    write_npy(tmp.string(), t.to(at::kDouble).contiguous());
    std::ifstream in(tmp, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    void* buf = std::malloc(bytes.size());
    std::memcpy(buf, bytes.data(), bytes.size());
    zip_source_t* s = zip_source_buffer(za, buf, bytes.size(), 1);
    const zip_int64_t idx = zip_name_locate(za, (std::string(name) + ".npy").c_str(), 0);
    REQUIRE(idx >= 0);
    REQUIRE(zip_file_replace(za, static_cast<zip_uint64_t>(idx), s, 0) == 0);
  };
  put("mu", mu);
  put("sigma", sigma);
  REQUIRE(zip_close(za) == 0);
}

}  // namespace

TEST_CASE("robustness: unconditional TorchScript models sample, encode and serve as features",
          "[robust][torchscript]") {
  const std::string ts = "torchscript:" + (kTorchScript / "eps_mlp.pt").string();
  const fs::path x0 = scratch("ts_x0.npy"), xT = scratch("ts_xT.npy");
  CliRun r = cli({"sample", "--model", ts, "--param", "eps", "--event-shape", "2", "--sampler",
                  "dpmpp-2m", "--steps", "5", "--n", "16", "--out", x0.string()});
  INFO(r.err);
  REQUIRE(r.rc == 0);
  const at::Tensor x = read_npy(x0.string());
  CHECK(x.sizes() == at::IntArrayRef({16, 2}));
  CHECK(at::isfinite(x).all().item<bool>());

  r = cli({"encode", "--model", ts, "--param", "eps", "--event-shape", "2", "--sampler", "ddim",
           "--steps", "8", "--x0", x0.string(), "--out", xT.string()});
  INFO(r.err);
  REQUIRE(r.rc == 0);
  CHECK(read_npy(xT.string()).sizes() == at::IntArrayRef({16, 2}));
  CHECK_THAT(r.out, Catch::Contains("round trip"));
  // Exact samples exist only for mixtures: a learned model needs --x0.
  check_bad_input(cli({"encode", "--model", ts, "--param", "eps", "--event-shape", "2"}), {"--x0"});

  // As the model of a study, and a TorchScript feature network forward(x) -> [n, d].
  const fs::path feat = scratch("features.pt"), data = scratch("ts_data.npy");
  save_module(feat, "x", "return torch.cat([x, 2.0 * x[:, :1]], 1)");
  write_npy(data.string(), at::randn({64, 2}, at::kDouble));
  r = cli({"fid-table",
           "--model",
           ts,
           "--param",
           "eps",
           "--event-shape",
           "2",
           "--samplers",
           "ddim",
           "--nfe",
           "4",
           "--n",
           "32",
           "--features",
           "torchscript:" + feat.string(),
           "--reference",
           "npy:" + data.string(),
           "--kid-subsets",
           "2",
           "--kid-subset-size",
           "16",
           "--out",
           scratch("ts_fid").string(),
           "--quiet"});
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("torchscript:" + feat.string()));
  r = cli({"converge", "--model", ts, "--param", "eps", "--event-shape", "2", "--samplers",
           "euler,heun", "--nfe", "4,8", "--n", "4", "--ref-tol", "1e-6", "--out",
           scratch("ts_conv").string(), "--quiet"});
  INFO(r.err);
  CHECK(r.rc == 0);
  // Without --param, the study says which flag (or spec field) it needs.
  check_bad_input(
      cli({"converge", "--model", ts, "--event-shape", "2", "--out", scratch("ts_conv2").string()}),
      {"--param"});
}

TEST_CASE("robustness: files whose tensor data are cut short are refused before they run",
          "[robust][torchscript]") {
  for (const double keep : {0.5, 0.0}) {
    const fs::path cut = scratch("cut_" + std::to_string(keep) + ".pt");
    truncate_tensor_record(kTorchScript / "eps_mlp.pt", cut, keep);
    check_bad_input(cli({"sample", "--model", "torchscript:" + cut.string(), "--param", "eps",
                         "--event-shape", "2", "--steps", "2", "--n", "4"}),
                    {cut.string(), "truncated or corrupt"});
    const fs::path cond = scratch("cut_cond_" + std::to_string(keep) + ".pt");
    truncate_tensor_record(kTorchScript / "eps_mlp_cond.pt", cond, keep);
    check_bad_input(cli({"sample", "--model", "torchscript:" + cond.string(), "--param", "eps",
                         "--event-shape", "2", "--steps", "2", "--n", "4"}),
                    {cond.string(), "truncated or corrupt"});
  }
  // Networks written by sdekit (torch::save archives) are checked the same way.
  const fs::path net = scratch("cut_net.pt");
  truncate_tensor_record(fs::path(sdekit_data_dir()) / "toy" / "two_moons_mlp.pt", net, 0.5);
  check_bad_input(cli({"sample", "--model", "net:" + net.string(), "--steps", "2", "--n", "4"}),
                  {net.string(), "truncated or corrupt"});
  // A feature network too.
  const fs::path feat = scratch("feat_weights.pt");
  {
    torch::jit::Module m("F");
    m.register_parameter("w", at::randn({2, 64}), false);
    m.define("def forward(self, x):\n    return x.float() @ self.w\n");
    m.save(feat.string());
  }
  const fs::path feat_cut = scratch("feat_cut.pt");
  truncate_tensor_record(feat, feat_cut, 0.25);
  check_bad_input(cli({"fid-table", "--model", "ring2d", "--samplers", "ddim", "--nfe", "2", "--n",
                       "16", "--n-ref", "32", "--features", "torchscript:" + feat_cut.string(),
                       "--out", scratch("feat_cut_fid").string(), "--quiet"}),
                  {feat_cut.string(), "truncated or corrupt"});
}

TEST_CASE("robustness: integers are read in 64 bits and never wrap", "[robust][spec]") {
  const fs::path spec = scratch("wrap.json");
  for (const std::string& bad :
       {std::string(R"({"nfe": [-2147483649]})"), std::string(R"({"nfe": [4294967297]})"),
        std::string(R"({"sde_ref_steps": 4294967300})"),
        std::string(R"({"n": 18446744073709551615})")}) {
    write_text(spec, bad);
    CliRun r = cli({"converge", "--spec", spec.string(), "--out", scratch("wrap_out").string()});
    INFO(bad);
    check_bad_input(r, {spec.string(), "out of range"});
  }
  // Flags: CLI11 refuses what does not fit the option's type: a usage error, exit 2.
  check_bad_input(cli({"sample", "--nfe", "4294967297"}), {"--nfe"});
  check_bad_input(cli({"sample", "--steps", "abc"}), {"--steps"});
  // The loops that used to hang: a batch of 0 and NFE budgets far beyond any step count.
  check_bad_input(cli({"classifier", "--batch", "0"}), {"batch"});
  check_bad_input(cli({"sample", "--nfe", "2147483647"}), {"--nfe"});
  write_text(spec, R"({"nfe": [2147483647], "samplers": ["euler"], "model": "ring2d"})");
  check_bad_input(cli({"converge", "--spec", spec.string(), "--out", scratch("wrap_out").string()}),
                  {"nfe"});
  write_text(spec, R"({"ref_tol": 1e-66, "samplers": ["euler"], "model": "ring2d"})");
  check_bad_input(cli({"converge", "--spec", spec.string(), "--out", scratch("wrap_out").string()}),
                  {"ref_tol"});
}

TEST_CASE("robustness: values that do not apply are refused, never ignored", "[robust]") {
  check_bad_input(cli({"sample", "--t-end", "-0.1"}), {"--t-end"});
  check_bad_input(cli({"encode", "--t-start", "-0.1"}), {"--t-start"});
  check_bad_input(cli({"sample", "--nfe", "0"}), {"--nfe"});
  check_bad_input(cli({"sample", "--nfe", "-5"}), {"--nfe"});
  check_bad_input(cli({"sample", "--device", "tpu"}), {"--device", "tpu"});
  check_bad_input(cli({"sample", "--device", "cuda:0"}), {"--device"});
  check_bad_input(cli({"classifier", "--epochs", "-1"}), {"epochs"});
  check_bad_input(cli({"classifier", "--lr", "inf"}), {"lr"});

  // sdekit fd: statistics that are no covariance are refused, and so is an overflow.
  const fs::path good = scratch("good.npz"), asym = scratch("asym.npz"), neg = scratch("neg.npz"),
                 huge = scratch("huge.npz");
  const at::Tensor mu = at::zeros({3}, at::kDouble), I = at::eye(3, at::kDouble);
  write_stats(good, mu, I);
  at::Tensor A = I.clone();
  A[0][1] = 0.5;
  write_stats(asym, mu, A);
  write_stats(neg, mu, -I);
  write_stats(huge, mu, 1e308 * I);
  CliRun r = cli({"fd", good.string(), good.string()});
  INFO(r.err);
  REQUIRE(r.rc == 0);
  CHECK(std::stod(r.out) == Approx(0.0).margin(1e-12));
  check_bad_input(cli({"fd", asym.string(), good.string()}), {asym.string(), "symmetric"});
  check_bad_input(cli({"fd", neg.string(), good.string()}), {neg.string(), "positive"});
  check_bad_input(cli({"fd", good.string(), huge.string()}), {huge.string(), "magnitude"});
}

TEST_CASE("robustness: a stored reference that is damaged is recomputed, not reused",
          "[robust][converge]") {
  const std::string out = scratch("damaged_ref").string();
  const std::vector<std::string> args = {"converge", "--model", "ring2d", "--samplers", "heun",
                                         "--nfe",    "4,8",     "--n",    "4",          "--ref-tol",
                                         "1e-8",     "--out",   out,      "--quiet",    "--json"};
  CliRun r = cli(args);
  INFO(r.err);
  REQUIRE(r.rc == 0);
  const at::Tensor ref = read_npy(out + "/reference.npy");
  at::Tensor bad = ref.clone();
  bad[0][0] = std::nan("");
  write_npy(out + "/reference.npy", bad);
  fs::remove(out + "/results.jsonl");  // cells are recomputed against the reference
  const CliRun again = cli(args);
  INFO(again.err);
  REQUIRE(again.rc == 0);
  const at::Tensor ref2 = read_npy(out + "/reference.npy");
  CHECK(at::isfinite(ref2).all().item<bool>());
  CHECK(at::equal(ref, ref2));
}

TEST_CASE("robustness: sizes that cannot fit are refused up front and leave no file",
          "[robust][memory]") {
  const fs::path out = scratch("huge_n.npy");
  check_bad_input(cli({"sample", "--n", "1000000000000", "--out", out.string()}), {"--n", "GiB"});
  check_bad_input(cli({"sample", "--n", "1e12", "--out", out.string()}), {"--n"});  // usage
  CHECK_FALSE(fs::exists(out));
  check_bad_input(cli({"sample", "--steps", "1e8", "--out", out.string()}), {"--steps"});
  CHECK_FALSE(fs::exists(out));
  check_bad_input(cli({"classifier", "--batch", "2000000000"}), {"batch"});
  check_bad_input(cli({"train", "--batch", "2000000000", "--out", scratch("huge_train").string()}),
                  {"batch", "GiB"});
  check_bad_input(cli({"converge", "--n", "1000000000000", "--out", scratch("huge_conv").string()}),
                  {"'n'", "GiB"});
  check_bad_input(cli({"fid-table", "--n", "1000000000000", "--out", scratch("huge_fid").string()}),
                  {"'n'", "GiB"});
}

TEST_CASE("robustness: errors name their cause in one line", "[robust]") {
  // A directory where a JSON file is expected.
  const fs::path dir = scratch("a_dir.json");
  fs::create_directories(dir);
  check_bad_input(cli({"converge", "--spec", dir.string()}), {dir.string(), "directory"});
  check_bad_input(cli({"sample", "--model", "gmm:" + dir.string()}), {dir.string(), "directory"});
  check_bad_input(cli({"sample", "--x-init", dir.string()}), {dir.string(), "directory"});
  // A number beyond double precision in JSON: the file is named.
  const fs::path overflow = scratch("overflow.json");
  write_text(overflow, R"({"weights": [1], "means": [[1e400, 0]], "stds": [1]})");
  check_bad_input(cli({"sample", "--model", "gmm:" + overflow.string()}), {overflow.string()});
  write_text(overflow, R"({"ref_tol": 1e400})");
  check_bad_input(cli({"converge", "--spec", overflow.string()}), {overflow.string()});
  // NaN in the inputs: the file and the row are named.
  const fs::path nan_x = scratch("nan_x.npy");
  at::Tensor x = at::zeros({5, 2}, at::kDouble);
  x[3][1] = std::nan("");
  write_npy(nan_x.string(), x);
  check_bad_input(cli({"sample", "--x-init", nan_x.string()}), {nan_x.string(), "row 3"});
  check_bad_input(cli({"encode", "--x0", nan_x.string()}), {nan_x.string(), "row 3"});
  // An empty data set as the reference of a table.
  const fs::path empty = scratch("empty.npy");
  write_npy(empty.string(), at::zeros({0, 2}, at::kDouble));
  check_bad_input(cli({"fid-table", "--model", "ring2d", "--samplers", "ddim", "--nfe", "2", "--n",
                       "8", "--reference", "npy:" + empty.string(), "--out",
                       scratch("empty_fid").string(), "--quiet"}),
                  {"npy:" + empty.string(), "at least 2 rows"});
  // CUDA asked for where there is none: one line, no LibTorch backtrace.
  if (!at::hasCUDA())
    check_bad_input(
        cli({"sample", "--model", "torchscript:" + (kTorchScript / "eps_mlp.pt").string(),
             "--param", "eps", "--event-shape", "2", "--device", "cuda"}),
        {"--device cuda", "CUDA is not available"});
}

TEST_CASE("robustness: a model that produces NaN is a failure that says so (exit 1)",
          "[robust][exit]") {
  const fs::path nan_model = scratch("nan_model.pt");
  save_module(nan_model, "x, t", "return x / (x - x)");
  const CliRun r = cli({"sample", "--model", "torchscript:" + nan_model.string(), "--param", "eps",
                        "--event-shape", "2", "--steps", "3", "--n", "4"});
  INFO(r.err);
  CHECK(r.rc == 1);
  CHECK_THAT(r.err, Catch::Contains("produced non-finite values from finite input") &&
                        Catch::Contains(nan_model.string()) && Catch::Contains("step 0"));
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}

TEST_CASE("robustness: one exit-code contract for usage errors", "[robust][exit]") {
  check_bad_input(cli({"sample", "--no-such-flag"}), {"--no-such-flag"});
  check_bad_input(cli({"no-such-command"}), {"subcommand"});
  check_bad_input(cli({"sample", "--n", "many"}), {"--n"});
  check_bad_input(cli({}), {"subcommand"});
  const CliRun help = cli({"sample", "--help"});
  CHECK(help.rc == 0);
  CHECK_THAT(help.out, Catch::Contains("--sampler"));
}

TEST_CASE("robustness: a results folder is locked by the run that uses it", "[robust][store]") {
  const std::string out = scratch("locked").string();
  {
    // Another run holds it: a lock taken through another open file description, with the
    // holder's record that a run writes.
    fs::create_directories(out);
    const int fd = ::open((fs::path(out) / ".lock").c_str(), O_RDWR | O_CREAT, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
    const std::string holder = "pid 424242, started 1700000000 (Unix time)\n";
    REQUIRE(::pwrite(fd, holder.data(), holder.size(), 0) == static_cast<ssize_t>(holder.size()));
    const CliRun r = cli({"converge", "--model", "ring2d", "--samplers", "euler", "--nfe", "4",
                          "--n", "4", "--out", out, "--quiet"});
    check_bad_input(r, {out, "in use by another run", "pid 424242"});
    ::close(fd);
  }
  // Released with its holder; leftovers of interrupted writes are removed by the next run.
  fs::create_directories(fs::path(out) / "stats");
  write_text(fs::path(out) / "stats" / "ddim_nfe_2.npz.tmp-123-ab", "partial");
  write_text(fs::path(out) / "reference.npy.tmp-77", "partial");
  const CliRun r = cli({"converge", "--model", "ring2d", "--samplers", "euler", "--nfe", "4", "--n",
                        "4", "--out", out, "--quiet", "--fresh"});
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK_FALSE(fs::exists(fs::path(out) / "stats" / "ddim_nfe_2.npz.tmp-123-ab"));
  CHECK_FALSE(fs::exists(fs::path(out) / "reference.npy.tmp-77"));
}

TEST_CASE("robustness: the strong-error reference is kept as soon as its fine solve exists",
          "[robust][converge]") {
  const std::string out = scratch("sde_ref").string();
  const std::vector<std::string> args = {
      "converge", "--model", "ring2d", "--samplers", "euler-maruyama",
      "--nfe",    "8,16",    "--n",    "4",          "--sde-ref-steps",
      "64",       "--out",   out,      "--quiet",    "--json"};
  const CliRun first = cli(args);
  INFO(first.err);
  REQUIRE(first.rc == 0);
  const fs::path full = fs::path(out) / "sde_reference_full.npy";
  REQUIRE(fs::exists(full));
  const auto stamp = fs::last_write_time(full);
  // As if interrupted after the fine solve: the final reference is missing.
  fs::remove(fs::path(out) / "sde_reference.npy");
  fs::remove(fs::path(out) / "sde_reference.json");
  const CliRun again = cli(args);
  INFO(again.err);
  REQUIRE(again.rc == 0);
  CHECK(fs::last_write_time(full) == stamp);  // reused, not solved again
  CHECK(
      at::equal(read_npy((fs::path(out) / "sde_reference.npy").string()), read_npy(full.string())));
}

TEST_CASE("robustness: --brownian only where every noise draw comes from the path",
          "[robust][noise]") {
  check_bad_input(cli({"sample", "--sampler", "pc", "--brownian", "--steps", "4", "--n", "4"}),
                  {"--brownian", "pc", "Langevin"});
  check_bad_input(
      cli({"sample", "--sampler", "annealed-langevin", "--brownian", "--steps", "2", "--n", "4"}),
      {"--brownian", "annealed-langevin"});
  check_bad_input(cli({"sample", "--sampler", "heun", "--brownian"}),
                  {"--brownian", "deterministic"});
  // With the corrector off, pc's noise is the predictor's Brownian increments, keyed by row:
  // the rows of a batch do not depend on its size.
  const fs::path x5 = scratch("pc_x5.npy"), x3 = scratch("pc_x3.npy");
  const at::Tensor xT = at::randn({5, 2}, at::kDouble);
  write_npy(x5.string(), xT);
  write_npy(x3.string(), xT.narrow(0, 0, 3));
  const fs::path a = scratch("pc_a.npy"), b = scratch("pc_b.npy");
  for (const auto& [in, out] : {std::pair{x5, a}, std::pair{x3, b}}) {
    const CliRun r =
        cli({"sample", "--sampler", "pc", "--corrector-steps", "0", "--brownian", "--steps", "8",
             "--dtype", "float64", "--x-init", in.string(), "--out", out.string()});
    INFO(r.err);
    REQUIRE(r.rc == 0);
  }
  const at::Tensor ya = read_npy(a.string()), yb = read_npy(b.string());
  CHECK(at::allclose(ya.narrow(0, 0, 3), yb, 1e-12, 1e-12));
}
