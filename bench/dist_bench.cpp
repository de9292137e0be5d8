// Runs over several processes and their randomness (docs/theory.md section 10):
//  - "draws/[N,64]": N x 64 standard normals, row-keyed (Philox per row, Box-Muller, float64)
//    against one CPU generator's at::randn, alternating in the same benchmark; x_rows is the
//    ratio rows / generator;
//  - "sample/gmm64/NAME/[N,64]": a whole 20-step run of the exact 64-d mixture with each stream
//    (x_T and, for a stochastic sampler, every step's noise), alternating; x_rows is the ratio;
//  - "scaling/fid-table": the same fid-table cells (gmm64, 2 samplers x NFE 100 and 200, n = 8000,
//    the sampling dominating the reference and the KID subsets) as one
//    process with 2 threads and as 2 processes with 1 thread each (sdekit launch), alternating;
//    counters: seconds of each, speedup = one / two, and the bytes the ranks communicated per
//    cell (from the command's own count).
// Run: build/bench/dist_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// (compare medians). The scaling benchmark runs the sdekit program: build it first.
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <regex>
#include <stdexcept>
#include <string>

#include "models/gaussian_mixture.hpp"
#include "schedules/registry.hpp"
#include "solvers/registry.hpp"
#include "solvers/row_noise.hpp"
#include "solvers/sample.hpp"

using namespace sdekit;

namespace {

double seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Alternates a and b once per iteration; reports each one's mean seconds and a / b.
void alternate(benchmark::State& state, const char* a_name, const std::function<void()>& a,
               const char* b_name, const std::function<void()>& b) {
  double ta = 0, tb = 0;
  for (auto _ : state) {
    ta += seconds_of(a);
    tb += seconds_of(b);
  }
  const double n = static_cast<double>(state.iterations());
  state.counters[a_name] = ta / n;
  state.counters[b_name] = tb / n;
  state.counters[std::string("x_") + a_name] = ta / tb;
}

void BM_draws(benchmark::State& state) {
  const int64_t n = state.range(0);
  at::Tensor out = at::empty({n, 64}, at::kFloat);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(0);
  uint64_t draw = 0;
  alternate(
      state, "rows", [&] { row_normal_into(out, 7, 0, ++draw); }, "generator",
      [&] {
        benchmark::DoNotOptimize(at::randn({n, 64}, g, at::kFloat));
      });
}
BENCHMARK(BM_draws)->Name("draws/[N,64]")->Arg(1000)->Arg(16384)->Unit(benchmark::kMillisecond);

void BM_sample(benchmark::State& state, const std::string& sampler_name) {
  const SDEPtr sde = make_sde("vp-linear");
  GaussianMixtureModel model(GaussianMixture::gmm64(), sde->schedule());
  const auto sampler = make_sampler(sampler_name);
  SampleSpec spec;
  spec.steps = 20;
  spec.n = state.range(0);
  spec.event_shape = {64};
  spec.seed = 3;
  SampleSpec gen = spec;
  gen.rng = RngKind::Generator;
  alternate(
      state, "rows", [&] { benchmark::DoNotOptimize(sample(*sampler, model, *sde, spec).x); },
      "generator", [&] { benchmark::DoNotOptimize(sample(*sampler, model, *sde, gen).x); });
}
BENCHMARK_CAPTURE(BM_sample, euler_maruyama, std::string("euler-maruyama"))
    ->Name("sample/gmm64/euler-maruyama/[N,64]")
    ->Arg(2000)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_sample, dpmpp_2m, std::string("dpmpp-2m"))
    ->Name("sample/gmm64/dpmpp-2m/[N,64]")
    ->Arg(2000)
    ->Unit(benchmark::kMillisecond);

// Runs the sdekit program; its standard output, or std::runtime_error with the status.
std::string run_program(const std::string& args) {
  const std::string cmd = std::string(SDEKIT_BIN) + " " + args + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> p(::popen(cmd.c_str(), "r"), ::pclose);
  if (!p) throw std::runtime_error("cannot run " + cmd);
  std::string out;
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), buf.size(), p.get())) out += buf.data();
  const int st = ::pclose(p.release());
  if (st != 0) throw std::runtime_error(cmd + " failed:\n" + out);
  return out;
}

void BM_scaling(benchmark::State& state) {
  const std::string dir = (std::filesystem::temp_directory_path() / "sdekit_dist_bench").string();
  const std::string cells =
      " --model gmm64 --samplers ddim,euler-maruyama --nfe 100,200 --n 8000 --n-ref 2000 "
      "--kid-subsets 2 --kid-subset-size 500 --quiet --fresh --out " +
      dir;
  double bytes_per_cell = 0;
  const std::regex bytes_re("\\(([0-9]+) bytes per cell\\)");
  alternate(
      state, "one_x2", [&] { run_program("fid-table --threads 2" + cells + "_1"); }, "two_x1",
      [&] {
        const std::string out =
            run_program("launch --nproc 2 -- fid-table --threads 1" + cells + "_2");
        std::smatch m;
        if (std::regex_search(out, m, bytes_re)) bytes_per_cell = std::stod(m[1].str());
      });
  state.counters["speedup"] = state.counters["one_x2"] / state.counters["two_x1"];
  state.counters["bytes_per_cell"] = bytes_per_cell;
  std::filesystem::remove_all(dir + "_1");
  std::filesystem::remove_all(dir + "_2");
}
BENCHMARK(BM_scaling)->Name("scaling/fid-table")->Iterations(1)->Unit(benchmark::kSecond);

}  // namespace

BENCHMARK_MAIN();
