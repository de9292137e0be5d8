// Sampling on a CUDA device (label it with the GPU's name when quoting). Without CUDA it says so
// and exits 0. Every timing ends with the device finished (a host copy of a reduction of the
// result), so it measures the work and not only its launch:
//  - "step/NAME/[B,...]": a 16-step run with a model that costs nothing (eps = 0.5 x): the
//    sampler's own cost per step on the GPU (counter per_step);
//  - "unet/[B,1,28,28]/call": one call of the committed Fashion-MNIST U-Net;
//  - "unet/[B,1,28,28]/dpmpp-2m": a 10-NFE DPM-Solver++ 2M run with it: per_nfe, model (the time
//    of 10 bare calls per NFE, measured in the same benchmark), model_share = model / run, and
//    samples_per_s. With SDEKIT_UNET_TS=FILE.pt also "unet-ts/...": the same with a TorchScript
//    export of the U-Net, the model scripts/eager_dpmpp2m.py runs in plain PyTorch.
// Run: build/bench/cuda_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "networks/loader.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/registry.hpp"

using namespace sdekit;

namespace {

const at::Device kCuda(at::kCUDA, 0);

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Waits for the device: a reduction copied to the host.
void finish(const at::Tensor& x) {
  benchmark::DoNotOptimize(x.sum().item<double>());
}

class FreeModel final : public ScoreModel {
 public:
  Param param() const override { return Param::Eps; }
  std::string name() const override { return "free"; }
  at::Tensor predict(const at::Tensor& x, const at::Tensor&) override { return x * 0.5; }
  at::Tensor predict_at(const at::Tensor& x, double) override { return x * 0.5; }
};

SampleRequest request(ScoreModel& model, const SDE& sde, const at::Tensor& x, int steps) {
  SampleRequest r;
  r.model = &model;
  r.sde = &sde;
  r.times = make_time_grid(GridKind::UniformLambda, *sde.schedule(), steps, sde.domain().hi,
                           sde.default_t_end());
  r.x_init = x;
  r.generator = at::make_generator<at::CPUGeneratorImpl>(0);
  r.finite_check = FiniteCheck::Final;
  return r;
}

void step_cost(benchmark::State& state, const std::string& name, const SDE& sde,
               const at::Tensor& x) {
  static FreeModel model;
  const auto sampler = make_sampler(name);
  const SampleRequest r = request(model, sde, x, 16);
  finish(sampler->run(r).x);  // warm-up: buffers, kernels
  for (auto _ : state) finish(sampler->run(r).x);
  state.counters["per_step"] =
      benchmark::Counter(16.0 * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void model_call(benchmark::State& state, ScoreModel& model, const at::Tensor& x) {
  finish(model.predict_at(x, 0.5));
  for (auto _ : state) finish(model.predict_at(x, 0.5));
}

void sampling_share(benchmark::State& state, ScoreModel& model, const SDE& sde,
                    const at::Tensor& x) {
  const auto sampler = make_sampler("dpmpp-2m");
  const SampleRequest r = request(model, sde, x, 10);
  finish(sampler->run(r).x);
  double t_run = 0.0, t_model = 0.0, nfe = 0.0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    const SampleResult res = sampler->run(r);
    finish(res.x);
    t_run += seconds_since(t0);
    nfe += static_cast<double>(res.nfe);
    t0 = std::chrono::steady_clock::now();
    at::Tensor y;
    for (int64_t i = 0; i < res.nfe; ++i) y = model.predict_at(x, 0.5);
    finish(y);
    t_model += seconds_since(t0);
  }
  const double runs = static_cast<double>(state.iterations());
  state.counters["per_nfe"] = t_run / nfe;
  state.counters["model"] = t_model / nfe;
  state.counters["model_share"] = t_model / t_run;
  state.counters["samples_per_s"] = static_cast<double>(x.size(0)) * runs / t_run;
}

}  // namespace

int main(int argc, char** argv) {
  if (!at::hasCUDA()) {
    std::cout << "cuda_bench: no CUDA device (or a LibTorch without CUDA): nothing to measure\n";
    return 0;
  }
  at::globalContext().setBenchmarkCuDNN(true);
  static const SDEPtr sde = make_sde("vp-linear");
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(kCuda);
  for (const std::vector<int64_t>& shape :
       {std::vector<int64_t>{1, 2}, std::vector<int64_t>{256, 1, 28, 28},
        std::vector<int64_t>{1024, 1, 28, 28}}) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
    s += "]";
    const at::Tensor x = at::randn(shape, f32);
    for (const char* name : {"euler", "ddim", "heun", "dpm-solver-2", "dpmpp-2m", "dpmpp-3m",
                             "unipc-2", "euler-ancestral", "dpmpp-2m-sde"}) {
      const std::string n = name;
      benchmark::RegisterBenchmark(("step/" + n + "/" + s).c_str(),
                                   [=](benchmark::State& st) { step_cost(st, n, *sde, x); })
          ->Unit(benchmark::kMicrosecond)
          ->MinTime(0.2);
    }
  }
  ModelOptions o;
  o.label = 0;
  o.device = "cuda";
  static const LoadedModel unet = load_model("fmnist", sde->schedule(), o);
  static LoadedModel unet_ts;
  const char* ts = std::getenv("SDEKIT_UNET_TS");
  if (ts) {
    ModelOptions t;
    t.param = "eps";
    t.event_shape = {1, 28, 28};
    t.device = "cuda";
    unet_ts = load_model(std::string("torchscript:") + ts, sde->schedule(), t);
  }
  for (const int64_t batch : {int64_t{256}, int64_t{1024}}) {
    const std::string s = "[" + std::to_string(batch) + ",1,28,28]";
    const at::Tensor x = at::randn({batch, 1, 28, 28}, f32);
    const std::vector<std::pair<std::string, const LoadedModel*>> models = {{"unet", &unet},
                                                                            {"unet-ts", &unet_ts}};
    for (const auto& [tag, lm] : models) {
      if (!lm->model) continue;
      ScoreModel* m = lm->model.get();
      benchmark::RegisterBenchmark((tag + "/" + s + "/call").c_str(),
                                   [=](benchmark::State& st) { model_call(st, *m, x); })
          ->Unit(benchmark::kMillisecond)
          ->MinTime(0.5);
      benchmark::RegisterBenchmark((tag + "/" + s + "/dpmpp-2m").c_str(),
                                   [=](benchmark::State& st) { sampling_share(st, *m, *sde, x); })
          ->Unit(benchmark::kMillisecond)
          ->MinTime(0.5);
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
