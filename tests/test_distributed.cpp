// Runs over several processes (docs/theory.md section 10): the sdekit program started over 2 and
// 3 local processes on the loopback interface (sdekit launch, or torchrun's variables set by
// hand), against the same command in one process.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "experiments/npy_io.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::string kBin = SDEKIT_BIN;

fs::path scratch(const std::string& name) {
  const fs::path p =
      fs::temp_directory_path() / ("sdekit_dist_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// Runs `args` (after the program) with stdout and stderr to files in `dir`; returns the status.
// The variables of an outer launcher are cleared, so a run is one process unless `env` says
// otherwise.
int run_sdekit(const std::string& args, const fs::path& dir, const std::string& tag,
               const std::string& env = "") {
  const std::string cmd = "env -u WORLD_SIZE -u RANK -u LOCAL_RANK -u MASTER_ADDR -u MASTER_PORT " +
                          env + " " + kBin + " " + args + " > " + (dir / (tag + ".out")).string() +
                          " 2> " + (dir / (tag + ".err")).string();
  const int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

std::vector<json> results_lines(const fs::path& dir) {
  std::vector<json> out;
  std::ifstream in(dir / "results.jsonl");
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

std::map<std::string, json> by_cell(const std::vector<json>& lines) {
  std::map<std::string, json> m;
  for (const auto& j : lines) m[j.at("cell").get<std::string>()] = j;
  return m;
}

// A process started with torchrun's variables for rank `rank` of `world`.
pid_t start_rank(const std::string& args, int rank, int world, int port, const fs::path& dir) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("RANK", std::to_string(rank).c_str(), 1);
    ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
    ::setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
    ::setenv("MASTER_ADDR", "127.0.0.1", 1);
    ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
    const std::string cmd = "exec " + kBin + " " + args + " > " +
                            (dir / ("rank" + std::to_string(rank) + ".out")).string() + " 2> " +
                            (dir / ("rank" + std::to_string(rank) + ".err")).string();
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// Waits for `pid` at most `limit`; the exit status, or -1 (then the process is killed).
int wait_for(pid_t pid, std::chrono::seconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return -1;
}

// A port nobody listens on now: one the kernel hands out on the loopback interface, released.
int unused_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Starts `args` as ranks 0 and 1 of 2 and waits (up to 120 s) until the first cell's line is in
// `out`'s results: then a rank is in the middle of another cell. Returns the two pids.
std::pair<pid_t, pid_t> start_two_until_a_cell(const std::string& args, const fs::path& out,
                                               const fs::path& dir) {
  const int port = unused_port();
  const pid_t r0 = start_rank(args, 0, 2, port, dir);
  const pid_t r1 = start_rank(args, 1, 2, port, dir);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (results_lines(out).empty() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return {r0, r1};
}

}  // namespace

TEST_CASE("sample writes the same .npy bytes at world size 1, 2 and 3 and at batch 7 and 64",
          "[distributed]") {
  const fs::path dir = scratch("sample");
  for (const char* sampler : {"dpmpp-2m", "euler-maruyama"}) {
    const std::string base = std::string("sample --model gmm64 --sampler ") + sampler +
                             " --steps 8 --n 100 --seed 11 --out ";
    REQUIRE(run_sdekit(base + (dir / "one.npy").string(), dir, "one") == 0);
    const std::string ref = slurp(dir / "one.npy");
    REQUIRE(ref.size() > 100 * 64 * 4);
    struct Variant {
      int world;
      int batch;
    };
    for (const Variant v : {Variant{1, 7}, Variant{1, 64}, Variant{2, 0}, Variant{2, 7},
                            Variant{3, 64}, Variant{3, 7}}) {
      const fs::path out =
          dir / ("w" + std::to_string(v.world) + "b" + std::to_string(v.batch) + ".npy");
      const std::string cmd =
          (v.world > 1 ? "launch --nproc " + std::to_string(v.world) + " -- " : std::string()) +
          base + out.string() + " --batch " + std::to_string(v.batch);
      INFO(sampler << ": world " << v.world << ", batch " << v.batch << ": "
                   << slurp(dir / "v.err"));
      REQUIRE(run_sdekit(cmd, dir, "v") == 0);
      CHECK(slurp(out) == ref);
    }
  }
  // The one generator's stream cannot be split, and says so.
  REQUIRE(run_sdekit("launch --nproc 2 -- sample --model gmm64 --rng generator --n 10", dir,
                     "gen") != 0);
  CHECK_THAT(slurp(dir / "gen.err"), Catch::Contains("--rng rows"));
  fs::remove_all(dir);
}

TEST_CASE("torchrun starts sdekit as it starts Python workers: static and c10d rendezvous",
          "[distributed]") {
  if (std::system("command -v torchrun > /dev/null 2>&1") != 0)
    FAIL("torchrun is not installed: scripts/test.sh installs it (Debian's python3-torch)");
  const fs::path dir = scratch("torchrun");
  // -n for --n: torchrun's parser would take "--n" for an abbreviation of its own flags.
  const std::string cmd = "sample --model gmm64 --sampler euler-maruyama --steps 6 -n 50 --out ";
  REQUIRE(run_sdekit(cmd + (dir / "one.npy").string(), dir, "one") == 0);
  const std::string ref = slurp(dir / "one.npy");
  // Static rendezvous: torchrun's agent hosts the store at the master port
  // (TORCHELASTIC_USE_AGENT_STORE=True); c10d rendezvous: rank 0 hosts one on a port of its own.
  // (--redirects 1 --tee 1 --log_dir: Debian's torchrun of PyTorch 1.13 under Python 3.11 fails
  // on its default "0" for both.)
  const std::string logs = " --redirects 1 --tee 1 --log_dir " + (dir / "logs").string();
  const std::vector<std::string> launchers = {
      "torchrun --no_python --nproc_per_node 2 --master_addr 127.0.0.1 --master_port " +
          std::to_string(unused_port()) + logs + "_0",
      "torchrun --no_python --nnodes 1 --nproc_per_node 3 --rdzv_backend c10d --rdzv_endpoint "
      "127.0.0.1:" +
          std::to_string(unused_port()) + logs + "_1"};
  for (std::size_t i = 0; i < launchers.size(); ++i) {
    const fs::path out = dir / ("t" + std::to_string(i) + ".npy");
    const std::string line =
        "env -u WORLD_SIZE -u RANK -u LOCAL_RANK -u MASTER_ADDR -u MASTER_PORT " + launchers[i] +
        " " + kBin + " " + cmd + out.string() + " > " + (dir / "t.out").string() + " 2>&1";
    const int rc = std::system(line.c_str());
    INFO(launchers[i] << "\n" << slurp(dir / "t.out"));
    REQUIRE(rc == 0);
    CHECK(slurp(out) == ref);
  }
  fs::remove_all(dir);
}

TEST_CASE("fid-table over 2 and 3 processes equals the single-process table", "[distributed]") {
  const fs::path dir = scratch("fid");
  const std::string spec =
      " --model gmm64 --samplers ddim,euler-maruyama --nfe 5,10 --n 301 --n-ref 1000 "
      "--kid-subsets 3 --kid-subset-size 200 --seed 5 --quiet --out ";
  REQUIRE(run_sdekit("fid-table" + spec + (dir / "w1").string(), dir, "w1") == 0);
  const auto one = by_cell(results_lines(dir / "w1"));
  REQUIRE(one.size() == 4);
  for (int world : {2, 3}) {
    const fs::path out = dir / ("w" + std::to_string(world));
    const std::string tag = "w" + std::to_string(world);
    INFO("world " << world << ": " << slurp(dir / (tag + ".err")));
    REQUIRE(run_sdekit(
                "launch --nproc " + std::to_string(world) + " -- fid-table" + spec + out.string(),
                dir, tag) == 0);
    const auto many = by_cell(results_lines(out));
    REQUIRE(many.size() == one.size());
    for (const auto& [cell, j] : one) {
      INFO(cell);
      const double fd1 = j.at("fd").get<double>(), fdw = many.at(cell).at("fd").get<double>();
      REQUIRE(fd1 > 0);
      CHECK(std::abs(fdw - fd1) <= 1e-10 * fd1);
      // KID sees the same features in the same order: the same value.
      CHECK(many.at(cell).at("kid").get<double>() == j.at("kid").get<double>());
      CHECK(many.at(cell).at("nfe") == j.at("nfe"));
    }
    // The results folder is rank 0's alone and complete.
    CHECK(fs::exists(out / "results.md"));
    CHECK(fs::exists(out / "stats" / "ddim_nfe_5.npz"));
  }
  fs::remove_all(dir);
}

TEST_CASE("converge over 2 and 3 processes gives the single-process errors bit for bit",
          "[distributed]") {
  const fs::path dir = scratch("converge");
  const std::string spec =
      " --samplers heun,dpmpp-2m,euler-maruyama,ancestral --nfe 6,12,24 --n 64 --quiet --out ";
  REQUIRE(run_sdekit("converge" + spec + (dir / "w1").string(), dir, "w1") == 0);
  const auto one = by_cell(results_lines(dir / "w1"));
  REQUIRE(one.size() >= 10);
  for (int world : {2, 3}) {
    const fs::path out = dir / ("w" + std::to_string(world));
    const std::string tag = "w" + std::to_string(world);
    INFO("world " << world << ": " << slurp(dir / (tag + ".err")));
    REQUIRE(
        run_sdekit("launch --nproc " + std::to_string(world) + " -- converge" + spec + out.string(),
                   dir, tag) == 0);
    const auto many = by_cell(results_lines(out));
    REQUIRE(many.size() == one.size());
    for (const auto& [cell, j] : one) {
      INFO(cell);
      for (const char* field : {"rms", "max", "mean_err", "cov_err", "nfe"})
        if (j.contains(field)) CHECK(many.at(cell).at(field).dump() == j.at(field).dump());
    }
    CHECK(slurp(out / "reference.npy") == slurp(dir / "w1" / "reference.npy"));
  }
  fs::remove_all(dir);
}

TEST_CASE(
    "a rank killed mid-cell stops the others with its rank, and the rerun completes the table",
    "[distributed]") {
  const fs::path dir = scratch("kill");
  const std::string spec =
      " --model gmm64 --samplers ddim,dpmpp-2m,euler-maruyama --nfe 10,20,40,80 --n 3000 "
      "--n-ref 2000 --kid-subsets 2 --kid-subset-size 100 --quiet --dist-timeout 20 --out ";
  const fs::path out = dir / "w2";
  // Once the first cell is stored, rank 1 is in the middle of another.
  const auto [r0, r1] = start_two_until_a_cell("fid-table" + spec + out.string(), out, dir);
  const std::size_t before = results_lines(out).size();
  REQUIRE(before >= 1);
  ::kill(r1, SIGKILL);
  ::waitpid(r1, nullptr, 0);
  const auto t_kill = std::chrono::steady_clock::now();
  const int rc0 = wait_for(r0, std::chrono::seconds(40));
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_kill).count();
  const std::string err0 = slurp(dir / "rank0.err");
  INFO("rank 0: " << err0);
  CHECK(rc0 > 0);
  CHECK(waited < 20.0 + 10.0);  // within the stated timeout (and the diagnosis)
  CHECK_THAT(err0, Catch::Contains("rank 1"));
  // What is stored is whole cells, each a valid line.
  const auto kept = results_lines(out);
  REQUIRE(kept.size() >= before);
  REQUIRE(kept.size() < 12);
  for (const auto& j : kept) CHECK(std::isfinite(j.at("fd").get<double>()));
  // The same command again over 2 processes resumes and completes; it matches one process.
  REQUIRE(run_sdekit("launch --nproc 2 -- fid-table" + spec + out.string(), dir, "rerun") == 0);
  const auto done = by_cell(results_lines(out));
  CHECK(done.size() == 12);
  REQUIRE(run_sdekit("fid-table" + spec + (dir / "w1").string(), dir, "w1") == 0);
  const auto one = by_cell(results_lines(dir / "w1"));
  REQUIRE(one.size() == 12);
  for (const auto& [cell, j] : one) {
    INFO(cell);
    const double fd1 = j.at("fd").get<double>();
    CHECK(std::abs(done.at(cell).at("fd").get<double>() - fd1) <= 1e-10 * fd1);
  }
  fs::remove_all(dir);
}

TEST_CASE("likelihood over 2 and 3 processes gives the single-process per-row results",
          "[distributed]") {
  const fs::path dir = scratch("likelihood");
  // The ODE with Hutchinson probes (row-keyed) at fixed steps, and the continuous bound.
  for (const std::string& spec :
       {std::string(" --model ring2d --sampler heun --nfe 8,16 --divergence hutchinson "
                    "--probes 2 --n 101 --quiet --out "),
        std::string(" --model ring2d --method elbo --timesteps 8 --n 101 --quiet --out ")}) {
    INFO(spec);
    REQUIRE(run_sdekit("likelihood" + spec + (dir / "w1").string() + " --fresh", dir, "w1") == 0);
    const auto one = by_cell(results_lines(dir / "w1"));
    REQUIRE_FALSE(one.empty());
    for (int world : {2, 3}) {
      const fs::path out = dir / ("w" + std::to_string(world));
      const std::string tag = "w" + std::to_string(world);
      INFO("world " << world << ": " << slurp(dir / (tag + ".err")));
      REQUIRE(run_sdekit("launch --nproc " + std::to_string(world) + " -- likelihood" + spec +
                             out.string() + " --fresh",
                         dir, tag) == 0);
      const auto many = by_cell(results_lines(out));
      REQUIRE(many.size() == one.size());
      for (const auto& [cell, j] : one) {
        INFO(cell);
        const double a = j.at("mean_nll").get<double>(),
                     b = many.at(cell).at("mean_nll").get<double>();
        CHECK(std::abs(a - b) <= 1e-12 * std::abs(a));
        CHECK(many.at(cell).at("nfe") == j.at("nfe"));
      }
      // Row by row: the same per-row log-likelihoods (rank 0 gathered every rank's rows), to
      // rounding: autograd's vector-Jacobian products of a smaller batch may round differently.
      const at::Tensor r1 = sdekit::read_npy((dir / "w1" / "nll.npy").string()),
                       rw = sdekit::read_npy((out / "nll.npy").string());
      REQUIRE(rw.sizes() == r1.sizes());
      const double worst = ((rw - r1).abs() / r1.abs().clamp_min(1.0)).max().item<double>();
      INFO("largest relative difference per row " << worst);
      CHECK(worst <= 1e-12);
    }
  }
  fs::remove_all(dir);
}

TEST_CASE("a rank that hangs mid-cell stops the others within --dist-timeout, naming it",
          "[distributed]") {
  const fs::path dir = scratch("hang");
  const std::string args =
      "fid-table --model gmm64 --samplers ddim,dpmpp-2m,euler-maruyama --nfe 10,20,40,80 --n 3000 "
      "--n-ref 2000 --kid-subsets 2 --kid-subset-size 100 --quiet --dist-timeout 4 --out " +
      (dir / "w2").string();
  const auto [r0, r1] = start_two_until_a_cell(args, dir / "w2", dir);
  REQUIRE_FALSE(results_lines(dir / "w2").empty());
  // Rank 1 stops without closing anything: rank 0 can only wait, up to the timeout.
  ::kill(r1, SIGSTOP);
  const auto t_stop = std::chrono::steady_clock::now();
  const int rc0 = wait_for(r0, std::chrono::seconds(40));
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_stop).count();
  ::kill(r1, SIGKILL);
  ::waitpid(r1, nullptr, 0);
  const std::string err0 = slurp(dir / "rank0.err");
  INFO("rank 0: " << err0);
  CHECK(rc0 > 0);
  CHECK(waited < 4.0 + 10.0);
  CHECK_THAT(err0, Catch::Contains("within 4 s"));
  CHECK_THAT(err0, Catch::Contains("rank 1"));
  for (const auto& j : results_lines(dir / "w2")) CHECK(std::isfinite(j.at("fd").get<double>()));
  fs::remove_all(dir);
}

TEST_CASE("a missing rank or an unreachable store ends the run with the rank and the address",
          "[distributed]") {
  const fs::path dir = scratch("faults");
  const std::string cmd = "sample --model gmm64 --n 10 --dist-timeout 3";
  // Rank 1 of 2 with nobody at the address.
  const int port = unused_port();
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t lone1 = start_rank(cmd, 1, 2, port, dir);
  const int rc1 = wait_for(lone1, std::chrono::seconds(30));
  CHECK(rc1 > 0);
  CHECK_THAT(slurp(dir / "rank1.err"), Catch::Contains("127.0.0.1:" + std::to_string(port)));
  // Rank 0 of 2 whose peer never comes: stopped within the timeout, naming rank 1.
  const pid_t lone0 = start_rank(cmd, 0, 2, unused_port(), dir);
  const int rc0 = wait_for(lone0, std::chrono::seconds(30));
  CHECK(rc0 > 0);
  CHECK_THAT(slurp(dir / "rank0.err"), Catch::Contains("rank 1"));
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 30.0);
  // A command that does not run over several processes says so.
  CHECK(run_sdekit("launch --nproc 2 -- moments", dir, "moments") != 0);
  CHECK_THAT(slurp(dir / "moments.err"), Catch::Contains("does not run over several processes"));
  fs::remove_all(dir);
}
