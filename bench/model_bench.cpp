// The committed Fashion-MNIST U-Net (`--model fmnist`, class 0) under the `sdekit` command's
// run-time settings (allocator tuned, OpenBLAS at one thread, LibTorch's default intra-op
// threads): one model call per NFE at batch 64 and 256, and the model's share of a sampling
// run's time, with the model calls and the runs alternating in the same benchmark.
//  - "unet/[B,1,28,28]/call": seconds per model call (per_nfe);
//  - "unet/[B,1,28,28]/NAME": a 4-step run of the sampler; per_nfe is the run's time per NFE,
//    model the time of the same number of bare model calls per NFE, model_share = model / run.
// Run: build/bench/model_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <benchmark/benchmark.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <string>

#include "apps/runtime.hpp"
#include "networks/loader.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/registry.hpp"

using namespace sdekit;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void model_call(benchmark::State& state, ScoreModel& model, const at::Tensor& x) {
  for (auto _ : state) benchmark::DoNotOptimize(model.predict_at(x, 0.5).data_ptr());
  state.counters["per_nfe"] =
      benchmark::Counter(static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void sampler_share(benchmark::State& state, const std::string& name, ScoreModel& model,
                   const SDE& sde, const at::Tensor& x) {
  const auto sampler = make_sampler(name);
  SampleRequest req;
  req.model = &model;
  req.sde = &sde;
  req.times =
      make_time_grid(GridKind::UniformT, *sde.schedule(), 4, sde.domain().hi, sde.default_t_end());
  req.x_init = x;
  req.generator = at::make_generator<at::CPUGeneratorImpl>(0);
  double t_run = 0.0, t_model = 0.0, nfe = 0.0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    SampleResult r = sampler->run(req);
    benchmark::DoNotOptimize(r.x.data_ptr());
    t_run += seconds_since(t0);
    nfe += static_cast<double>(r.nfe);
    t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < r.nfe; ++i)
      benchmark::DoNotOptimize(model.predict_at(x, 0.5).data_ptr());
    t_model += seconds_since(t0);
  }
  state.counters["per_nfe"] = t_run / nfe;
  state.counters["model"] = t_model / nfe;
  state.counters["model_share"] = t_model / t_run;
  state.counters["nfe"] = nfe / static_cast<double>(state.iterations());
}

}  // namespace

int main(int argc, char** argv) {
  std::cerr << tune_allocator() << "\n";
  configure_threads(0);
  const SDEPtr sde = make_sde("vp-linear");
  ModelOptions o;
  o.label = 0;
  static const LoadedModel lm = load_model("fmnist", sde->schedule(), o);
  for (const int64_t batch : {int64_t{64}, int64_t{256}}) {
    const std::string shape = "[" + std::to_string(batch) + ",1,28,28]";
    const at::Tensor x = at::randn({batch, 1, 28, 28}, at::kFloat);
    benchmark::RegisterBenchmark(("unet/" + shape + "/call").c_str(),
                                 [=](benchmark::State& s) { model_call(s, *lm.model, x); })
        ->Unit(benchmark::kMillisecond)
        ->MinTime(2.0);
    for (const char* name : {"ddim", "dpmpp-2m", "heun", "euler-maruyama"}) {
      const std::string n = name;
      benchmark::RegisterBenchmark(
          ("unet/" + shape + "/" + n).c_str(),
          [=](benchmark::State& s) { sampler_share(s, n, *lm.model, *sde, x); })
          ->Unit(benchmark::kMillisecond)
          ->Iterations(1);
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
