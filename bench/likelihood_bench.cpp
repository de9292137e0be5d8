// Cost per NFE of the likelihood ODE's divergence (models/likelihood_flow.hpp): the exact trace
// (D vector-Jacobian products per evaluation) against Hutchinson's estimate with K = 1 and 4
// probes, on the 64-d mixture (batch 64, float64) and the committed U-Net (batch 16, float32,
// null label), each next to the bare model call in the same run.
//  - "NAME/model": seconds per plain model call (per_nfe);
//  - "NAME/exact", "NAME/hutchinson-K": seconds per augmented evaluation (per_nfe), and its ratio
//    to the plain call (x_model), measured in the same benchmark run.
// The U-Net's exact trace (784 products per NFE) is left out: Hutchinson is the method there.
// Run: build/bench/likelihood_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <string>

#include "apps/runtime.hpp"
#include "models/likelihood_flow.hpp"
#include "networks/loader.hpp"
#include "schedules/registry.hpp"

using namespace sdekit;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void divergence_cost(benchmark::State& state, ScoreModel& model, const SchedulePtr& k,
                     const std::vector<int64_t>& event, const at::Tensor& x, Divergence d,
                     int64_t probes) {
  AugmentedFlowModel aug(model, k, event, x.size(0), d, probes, false, 0, x.scalar_type());
  const at::Tensor z = aug.augment(x);
  double t_aug = 0.0, t_model = 0.0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(aug.predict_at(z, 0.5).data_ptr());
    t_aug += seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(model.predict_at(x, 0.5).data_ptr());
    t_model += seconds_since(t0);
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["per_nfe"] = t_aug / n;
  state.counters["model"] = t_model / n;
  state.counters["x_model"] = t_aug / t_model;
}

}  // namespace

int main(int argc, char** argv) {
  std::cerr << tune_allocator() << "\n";
  configure_threads(0);
  const SDEPtr sde = make_sde("vp-linear");
  const SchedulePtr k = sde->schedule();
  static const LoadedModel mix = load_model("gmm64", k);
  ModelOptions o;
  o.label = 10;  // the null label
  static const LoadedModel unet = load_model("fmnist", k, o);
  const at::Tensor xm = at::randn({64, 64}, at::kDouble);
  const at::Tensor xu = at::randn({16, 1, 28, 28}, at::kFloat);
  struct Case {
    std::string name;
    const LoadedModel* lm;
    at::Tensor x;
    bool exact;
  };
  for (const Case& c :
       {Case{"gmm64/[64,64]", &mix, xm, true}, Case{"unet/[16,1,28,28]", &unet, xu, false}}) {
    std::vector<std::pair<std::string, std::pair<Divergence, int64_t>>> kinds = {
        {"hutchinson-1", {Divergence::Hutchinson, 1}},
        {"hutchinson-4", {Divergence::Hutchinson, 4}}};
    if (c.exact) kinds.insert(kinds.begin(), {"exact", {Divergence::Exact, 1}});
    for (const auto& [label, dk] : kinds) {
      const auto [d, probes] = dk;
      const Case cc = c;
      benchmark::RegisterBenchmark((c.name + "/" + label).c_str(),
                                   [=](benchmark::State& s) {
                                     divergence_cost(s, *cc.lm->model, k, cc.lm->event_shape, cc.x,
                                                     d, probes);
                                   })
          ->Unit(benchmark::kMillisecond)
          ->MinTime(1.0);
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
