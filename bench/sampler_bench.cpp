// Per-step cost of every registered sampler:
//  - "step/free_model/SHAPE/NAME": a model that returns a preallocated tensor, so the time is the
//    sampler's own (schedule scalars, tensor ops, finiteness checks, observer plumbing), at
//    [1, 2], [16384, 2] and [64, 1, 28, 28]; next to two floors timed in the same benchmark,
//    alternating with the sampler: a bare at::add of the state's shape ("add") and a copy of the
//    state ("copy": its bytes read once and written once). x_add and x_copy are the ratios;
//  - the exact mixture model (ring2d in 2-D, gmm64 in 64-D): what a step costs in practice.
//  - "alloc/...": CPU allocations and bytes per step in steady state (a counting allocator);
//  - "syncs/...": host-device syncs per accepted step of the adaptive Runge-Kutta samplers;
//  - "mixture_call/ring2d/[N,2]": one call of the exact ring2d mixture model (float64, eps
//    output) at batch 1, 256 and 65536, alternating in the same benchmark with three floors: a
//    bare at::add of the batch's shape ("add"), a copy of the bytes the call must read and write
//    (x and the output, "copy"), and that copy plus LibTorch's vectorized exp over the [N, K]
//    log-weights the responsibilities need ("exp_copy"); x_add, x_copy and x_exp_copy are the
//    ratios.
// Run: build/bench/sampler_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// The counter "per_step" is CPU time per step (compare medians across repetitions).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <c10/core/CPUAllocator.h>
#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "models/gaussian_mixture.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/reference.hpp"
#include "solvers/registry.hpp"

using namespace sdekit;

namespace {

class FreeModel final : public ScoreModel {
 public:
  explicit FreeModel(at::Tensor out) : out_(std::move(out)) {}
  Param param() const override { return Param::Eps; }
  at::Tensor predict(const at::Tensor&, const at::Tensor&) override { return out_; }
  at::Tensor predict_at(const at::Tensor&, double) override { return out_; }

 private:
  at::Tensor out_;
};

// Counts every CPU allocation (tensor storages, wrapped scalars included) by wrapping the
// default CPU allocator.
class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* base) : base_(base) {}
  c10::DataPtr allocate(size_t n) const override {
    count_.fetch_add(1);
    bytes_.fetch_add(static_cast<int64_t>(n));
    return base_->allocate(n);
  }
  c10::DeleterFnPtr raw_deleter() const override { return base_->raw_deleter(); }
  int64_t count() const { return count_.load(); }
  int64_t bytes() const { return bytes_.load(); }

 private:
  c10::Allocator* base_;
  mutable std::atomic<int64_t> count_{0}, bytes_{0};
};
CountingAllocator* g_counter = nullptr;

double seconds(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Times `work` (which performs `units` units: steps or calls) alternating with each floor (run
// `units` times per iteration), and reports per-unit seconds of each and their ratios.
void with_floors(benchmark::State& state, const std::function<int()>& work,
                 const std::vector<std::pair<std::string, std::function<void()>>>& floors) {
  double t_work = 0.0;
  double units_total = 0.0;
  std::vector<double> t_floor(floors.size(), 0.0);
  for (auto _ : state) {
    int units = 0;
    t_work += seconds([&] { units = work(); });
    units_total += units;
    for (size_t f = 0; f < floors.size(); ++f)
      t_floor[f] += seconds([&] {
        for (int u = 0; u < units; ++u) floors[f].second();
      });
  }
  const double per = t_work / units_total;
  state.counters["per_unit"] = per;
  for (size_t f = 0; f < floors.size(); ++f) {
    const double fl = t_floor[f] / units_total;
    state.counters[floors[f].first] = fl;
    state.counters["x_" + floors[f].first] = per / fl;
  }
}

// A request for a fixed 50-step run on a grid uniform in t, noise from seed 0.
constexpr int kSteps = 50;
SampleRequest fixed_request(ScoreModel& model, const SDE& sde, const at::Tensor& xT,
                            int steps = kSteps) {
  SampleRequest req;
  req.model = &model;
  req.sde = &sde;
  req.times = make_time_grid(GridKind::UniformT, *sde.schedule(), steps, sde.domain().hi,
                             sde.default_t_end());
  req.x_init = xT;
  req.generator = at::make_generator<at::CPUGeneratorImpl>(0);
  return req;
}

// Steady-state allocations per step: (allocations of a 2N-step run - those of an N-step run) / N,
// so that per-run set-up (work buffers, the first step) cancels out.
void allocations_per_step(benchmark::State& state, const std::string& sampler_name,
                          ScoreModel& model, const SDE& sde, const at::Tensor& xT) {
  const auto sampler = make_sampler(sampler_name);
  auto count = [&](int steps) {
    const SampleRequest req = fixed_request(model, sde, xT, steps);
    const int64_t c0 = g_counter->count(), b0 = g_counter->bytes();
    SampleResult r = sampler->run(req);
    benchmark::DoNotOptimize(r.x.data_ptr());
    return std::make_pair(g_counter->count() - c0, g_counter->bytes() - b0);
  };
  std::pair<int64_t, int64_t> a{}, b{};
  count(10);  // warm-up: one-time initialisations (thread-local scalars, caches) stay out
  for (auto _ : state) {
    a = count(10);
    b = count(20);
  }
  state.counters["allocs_per_step"] = static_cast<double>(b.first - a.first) / 10.0;
  state.counters["bytes_per_step"] = static_cast<double>(b.second - a.second) / 10.0;
  state.counters["state_bytes"] = static_cast<double>(xT.nbytes());
}

// The adaptive Runge-Kutta path's host-device syncs per accepted step (error norms and
// finiteness checks; adaptive_solve counts them), on the 64-d mixture at rtol = atol = 1e-6.
void adaptive_syncs(benchmark::State& state, const std::string& method, ScoreModel& model,
                    const SDE& sde, const at::Tensor& xT) {
  SamplerOptions o;
  o.rtol = o.atol = 1e-6;
  SampleRequest req;
  req.model = &model;
  req.sde = &sde;
  req.times = {sde.domain().hi, sde.default_t_end()};
  req.x_init = xT;
  AdaptiveStats st;
  for (auto _ : state) st = adaptive_solve(method, o, req).stats;
  state.counters["syncs_per_step"] = st.syncs_per_step();
  state.counters["accepted"] = st.accepted;
  state.counters["rejected"] = st.rejected;
  state.counters["nfe"] = static_cast<double>(st.nfe);
}

void run_sampler(benchmark::State& state, const std::string& sampler_name, ScoreModel& model,
                 const SDE& sde, const at::Tensor& xT, FiniteCheck check) {
  const auto sampler = make_sampler(sampler_name);
  SampleRequest req = fixed_request(model, sde, xT);
  req.finite_check = check;
  int64_t nfe = 0;
  int steps = kSteps;
  for (auto _ : state) {
    SampleResult r = sampler->run(req);
    benchmark::DoNotOptimize(r.x.data_ptr());
    nfe = r.nfe;
    steps = r.steps;  // adaptive samplers choose their own
  }
  // Seconds per step (printed with an SI prefix, e.g. 4.2u = 4.2 microseconds).
  state.counters["steps"] = steps;
  state.counters["per_step"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * steps,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["nfe"] = static_cast<double>(nfe);
}

// Time per step of a fixed 50-step run (adaptive samplers: per accepted step) with the add and
// copy floors of the state's shape.
void step_with_floors(benchmark::State& state, const std::string& sampler_name, ScoreModel& model,
                      const SDE& sde, const at::Tensor& xT) {
  const auto sampler = make_sampler(sampler_name);
  SampleRequest req = fixed_request(model, sde, xT);
  const at::Tensor a = xT.clone(), b = at::empty_like(xT);
  int steps = kSteps;
  with_floors(state,
              [&] {
                SampleResult r = sampler->run(req);
                benchmark::DoNotOptimize(r.x.data_ptr());
                return steps = r.steps;
              },
              {{"add", [&] { benchmark::DoNotOptimize(at::add(a, a)); }},
               {"copy", [&] {
                  at::Tensor dst = b;
                  dst.copy_(a);
                  benchmark::DoNotOptimize(dst.data_ptr());
                }}});
  state.counters["steps"] = steps;
}

}  // namespace

int main(int argc, char** argv) {
  at::set_num_threads(1);
  static CountingAllocator counter(c10::GetCPUAllocator());
  c10::SetCPUAllocator(&counter, /*priority=*/1);
  g_counter = &counter;
  const SDEPtr sde = make_sde("vp-linear");
  // A fixed, non-zero prediction (zeros would make the Langevin step size 0/0).
  static FreeModel free_model(at::full({1, 2}, 0.5, at::kFloat));
  static GaussianMixtureModel ring(GaussianMixture::ring2d(), sde->schedule());
  static GaussianMixtureModel gmm64(GaussianMixture::gmm64(), sde->schedule());
  static const at::Tensor x1 = at::randn({1, 2}, at::kFloat);
  static const at::Tensor x1024 = at::randn({1024, 2}, at::kFloat);
  static const at::Tensor x64 = at::randn({256, 64}, at::kFloat);
  static FreeModel free_big(at::full({16384, 2}, 0.5, at::kFloat));
  static FreeModel free_img(at::full({64, 1, 28, 28}, 0.5, at::kFloat));
  static const at::Tensor x16k = at::randn({16384, 2}, at::kFloat);
  static const at::Tensor ximg = at::randn({64, 1, 28, 28}, at::kFloat);
  static const at::Tensor x64d = at::randn({256, 64}, at::kDouble);
  static GaussianMixtureModel gmm64_f64(GaussianMixture::gmm64(), sde->schedule());
  for (const char* method : {"dopri5", "cash-karp", "fehlberg78"}) {
    const std::string m = method;
    benchmark::RegisterBenchmark(("syncs/gmm64/[256,64]/" + m).c_str(), [=](benchmark::State& s) {
      adaptive_syncs(s, m, gmm64_f64, *sde, x64d);
    })->Iterations(1);
  }
  for (const auto& info : sampler_registry()) {
    const std::string name = info.name;
    if (make_sampler(name)->consistency()) continue;  // needs a consistency function
    if (!make_sampler(name)->adaptive()) {
      benchmark::RegisterBenchmark(
          ("alloc/free_model/[16384,2]/" + name).c_str(),
          [=](benchmark::State& s) { allocations_per_step(s, name, free_big, *sde, x16k); })
          ->Iterations(1);
      benchmark::RegisterBenchmark(
          ("alloc/free_model/[64,1,28,28]/" + name).c_str(),
          [=](benchmark::State& s) { allocations_per_step(s, name, free_img, *sde, ximg); })
          ->Iterations(1);
    }
    benchmark::RegisterBenchmark(
        ("step/free_model/[1,2]/" + name).c_str(),
        [=](benchmark::State& s) { step_with_floors(s, name, free_model, *sde, x1); });
    benchmark::RegisterBenchmark(
        ("step/free_model/[16384,2]/" + name).c_str(),
        [=](benchmark::State& s) { step_with_floors(s, name, free_big, *sde, x16k); });
    benchmark::RegisterBenchmark(
        ("step/free_model/[64,1,28,28]/" + name).c_str(),
        [=](benchmark::State& s) { step_with_floors(s, name, free_img, *sde, ximg); });
    benchmark::RegisterBenchmark(("overhead/free_model/[1,2]/final_check/" + name).c_str(),
                                 [=](benchmark::State& s) {
                                   run_sampler(s, name, free_model, *sde, x1, FiniteCheck::Final);
                                 });
    benchmark::RegisterBenchmark(("mixture/ring2d/[1024,2]/" + name).c_str(),
                                 [=](benchmark::State& s) {
                                   run_sampler(s, name, ring, *sde, x1024, FiniteCheck::EveryStep);
                                 });
    benchmark::RegisterBenchmark(("mixture/gmm64/[256,64]/" + name).c_str(),
                                 [=](benchmark::State& s) {
                                   run_sampler(s, name, gmm64, *sde, x64, FiniteCheck::EveryStep);
                                 });
  }
  // The exact mixture per call, with its floors.
  static GaussianMixtureModel ring_eps(GaussianMixture::ring2d(), sde->schedule(), Param::Eps);
  const int64_t K = GaussianMixture::ring2d().components();
  for (const int64_t n : {int64_t{1}, int64_t{256}, int64_t{65536}}) {
    const std::string shape = "[" + std::to_string(n) + ",2]";
    benchmark::RegisterBenchmark(
        ("mixture_call/ring2d/" + shape).c_str(), [=](benchmark::State& s) {
          const at::Tensor x = at::randn({n, 2}, at::kDouble);
          const at::Tensor from = at::randn({2 * n, 2}, at::kDouble);
          const at::Tensor to = at::empty_like(from);
          const at::Tensor logits = -at::rand({n, K}, at::kDouble);
          const at::Tensor e = at::empty_like(logits);
          constexpr int kCalls = 10;
          with_floors(s,
                      [&] {
                        for (int c = 0; c < kCalls; ++c)
                          benchmark::DoNotOptimize(ring_eps.predict_at(x, 0.5));
                        return kCalls;
                      },
                      {{"add", [&] { benchmark::DoNotOptimize(at::add(x, x)); }},
                       {"copy",
                        [&] {
                          at::Tensor dst = to;
                          dst.copy_(from);
                          benchmark::DoNotOptimize(dst.data_ptr());
                        }},
                       {"exp_copy", [&] {
                          at::Tensor dst = to, ex = e;
                          dst.copy_(from);
                          at::exp_out(ex, logits);
                          benchmark::DoNotOptimize(ex.data_ptr());
                        }}});
        });
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
