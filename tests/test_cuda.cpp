// CUDA against the CPU (label cuda): every sampler from the same x_T, the mixture model, the
// networks, a training run, TorchScript modules, and the host-device synchronizations per step of
// the fixed-step samplers, counted with LibTorch's sync debug mode (must be 0). Without a CUDA
// device every test exits with code 77, which ctest reports as skipped. CUDA runs with
// full-precision float32 (no TF32) and deterministic cuDNN, so that the two devices differ by
// rounding alone: 1e-5 relative in float32, 1e-10 in float64.
#define CATCH_CONFIG_RUNNER
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <c10/util/Exception.h>
#include <torch/version.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#if SDEKIT_TORCH_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

#include "models/gaussian_mixture.hpp"
#include "networks/loader.hpp"
#include "networks/network.hpp"
#include "networks/torchscript_model.hpp"
#include "networks/train.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/noise.hpp"
#include "solvers/registry.hpp"

using namespace sdekit;
namespace fs = std::filesystem;

namespace {

const at::Device kCuda(at::kCUDA, 0);

double rel_diff(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor ad = a.to(at::kCPU, at::kDouble), bd = b.to(at::kCPU, at::kDouble);
  const double scale = std::max(bd.abs().max().item<double>(), 1e-300);
  return (ad - bd).abs().max().item<double>() / scale;
}

double tolerance(at::ScalarType dtype) {
  return dtype == at::kDouble ? 1e-10 : 1e-5;
}

SampleResult run_on(const std::string& name, ScoreModel& model, const SDE& sde,
                    const at::Tensor& xT, at::Device device) {
  const auto sampler = make_sampler(name);
  SampleRequest r;
  r.model = &model;
  r.sde = &sde;
  const double T = sde.domain().hi, t_end = sde.default_t_end();
  r.times = sampler->adaptive()
                ? std::vector<double>{T, t_end}
                : make_time_grid(GridKind::UniformLambda, *sde.schedule(), 10, T, t_end);
  r.x_init = xT.to(device);
  // The noise is drawn on the CPU and moved, so both devices see the same draws.
  r.generator = at::make_generator<at::CPUGeneratorImpl>(5);
  return sampler->run(r);
}

/// eps = 0.5 x: a model that costs nothing and never synchronizes.
class FreeModel final : public ScoreModel {
 public:
  Param param() const override { return Param::Eps; }
  std::string name() const override { return "free"; }
  at::Tensor predict(const at::Tensor& x, const at::Tensor&) override { return x * 0.5; }
  at::Tensor predict_at(const at::Tensor& x, double) override { return x * 0.5; }
};

#if SDEKIT_TORCH_CUDA
/// Counts LibTorch's "called a synchronizing CUDA operation" warnings while alive.
class SyncCounter final : public c10::WarningHandler {
 public:
  SyncCounter() {
#if TORCH_VERSION_MAJOR >= 2
    prev_ = c10::WarningUtils::get_warning_handler();
    c10::WarningUtils::set_warning_handler(this);
#else
    prev_ = c10::Warning::get_warning_handler();
    c10::Warning::set_warning_handler(this);
#endif
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_WARN);
  }
  ~SyncCounter() override {
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
#if TORCH_VERSION_MAJOR >= 2
    c10::WarningUtils::set_warning_handler(prev_);
#else
    c10::Warning::set_warning_handler(prev_);
#endif
  }
#if TORCH_VERSION_MAJOR >= 2
  void process(const c10::Warning& w) override {
    note(w.msg());
  }
#else
  void process(const c10::SourceLocation&, const std::string& msg, const bool) override {
    note(msg);
  }
#endif
  int count = 0;

 private:
  void note(const std::string& msg) {
    if (msg.find("synchroniz") != std::string::npos) ++count;
  }
  c10::WarningHandler* prev_ = nullptr;
};
#endif

}  // namespace

TEST_CASE("every sampler on CUDA equals its CPU result from the same x_T", "[cuda]") {
  const GaussianMixture mix = GaussianMixture::ring2d();
  for (const char* sde_name : {"vp-linear", "edm"}) {
    const SDEPtr sde = make_sde(sde_name);
    GaussianMixtureModel model(mix, sde->schedule());
    for (at::ScalarType dtype : {at::kDouble, at::kFloat}) {
      at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
      const at::Tensor xT = draw_prior(*sde, {64, 2}, g, dtype);
      for (const auto& info : sampler_registry()) {
        if (make_sampler(info.name)->consistency()) continue;
        INFO(info.name << " on " << sde_name << ", " << at::toString(dtype));
        const SampleResult cpu = run_on(info.name, model, *sde, xT, at::kCPU);
        const SampleResult gpu = run_on(info.name, model, *sde, xT, kCuda);
        CHECK(gpu.x.device().is_cuda());
        CHECK(gpu.nfe == cpu.nfe);
        const double d = rel_diff(gpu.x, cpu.x);
        std::cout << "cuda-vs-cpu " << info.name << " " << sde_name << " " << at::toString(dtype)
                  << " " << d << "\n";
        CHECK(d < tolerance(dtype));
      }
    }
  }
}

TEST_CASE("the mixture model on CUDA: predictions equal the CPU's", "[cuda]") {
  const SDEPtr sde = make_sde("vp-linear");
  GaussianMixtureModel model(GaussianMixture::gmm64(), sde->schedule());
  for (at::ScalarType dtype : {at::kDouble, at::kFloat}) {
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(1);
    const at::Tensor x = at::randn({128, 64}, g, dtype);
    for (double t : {1.0, 0.3, 1e-3}) {
      INFO("t = " << t << ", " << at::toString(dtype));
      CHECK(rel_diff(model.predict_at(x.to(kCuda), t), model.predict_at(x, t)) < tolerance(dtype));
    }
  }
}

TEST_CASE("the networks on CUDA: the committed U-Net and a fresh MLP", "[cuda]") {
  const SDEPtr sde = make_sde("vp-linear");
  ModelOptions cpu_o, gpu_o;
  gpu_o.device = "cuda";
  const LoadedModel cpu = load_model("fmnist", sde->schedule(), cpu_o);
  const LoadedModel gpu = load_model("fmnist", sde->schedule(), gpu_o);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(2);
  const at::Tensor x = at::randn({16, 1, 28, 28}, g, at::kFloat);
  for (double t : {0.9, 0.1}) {
    INFO("U-Net, t = " << t);
    CHECK(rel_diff(gpu.model->predict_at(x.to(kCuda), t), cpu.model->predict_at(x, t)) < 1e-5);
  }
  NetConfig c;
  c.width = 64;
  Network a(c, 7), b(c, 7);
  b.to("cuda");
  CHECK(b.device().rfind("cuda", 0) == 0);
  const at::Tensor y = at::randn({32, 2}, g, at::kFloat);
  CHECK(rel_diff(b.predict_at(y.to(kCuda), 0.4), a.predict_at(y, 0.4)) < 1e-5);
}

TEST_CASE("a training run on CUDA follows the CPU's", "[cuda]") {
  TrainConfig c;
  c.net.width = 32;
  c.net.depth = 2;
  c.data = "mixture:ring2d";
  c.steps = 5;
  c.batch = 64;
  c.checkpoint_every = 1000;
  const fs::path dir = fs::temp_directory_path() / "sdekit_test_cuda_train";
  fs::remove_all(dir);
  const TrainResult cpu = train(c, (dir / "cpu").string(), false);
  c.device = "cuda";
  const TrainResult gpu = train(c, (dir / "cuda").string(), false);
  CHECK(gpu.net->device().rfind("cuda", 0) == 0);
  const auto pc = cpu.net->parameters(), pg = gpu.net->parameters();
  REQUIRE(pc.size() == pg.size());
  // Five Adam steps amplify rounding a little: 1e-4.
  for (size_t i = 0; i < pc.size(); ++i) CHECK(rel_diff(pg[i], pc[i]) < 1e-4);
  CHECK(std::abs(gpu.final_loss - cpu.final_loss) <= 1e-4 * std::abs(cpu.final_loss));
  fs::remove_all(dir);
}

TEST_CASE("TorchScript modules on CUDA equal the CPU's", "[cuda]") {
  const std::string path = std::string(SDEKIT_TEST_DATA) + "/torchscript/eps_mlp.pt";
  const auto cpu = TorchScriptModel::load(path, Param::Eps);
  const auto gpu = TorchScriptModel::load(path, Param::Eps, "cuda");
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(4);
  const at::Tensor x = at::randn({32, 2}, g, at::kFloat);
  for (double t : {0.8, 0.05})
    CHECK(rel_diff(gpu->predict_at(x.to(kCuda), t), cpu->predict_at(x, t)) < 1e-5);
  // And sampling through it.
  const SDEPtr sde = make_sde("vp-linear");
  const at::Tensor xT = draw_prior(*sde, {32, 2}, g, at::kFloat);
  CHECK(rel_diff(run_on("dpmpp-2m", *gpu, *sde, xT, kCuda).x,
                 run_on("dpmpp-2m", *cpu, *sde, xT, at::kCPU).x) < 1e-5);
}

TEST_CASE("fixed-step samplers make no host-device synchronization per step", "[cuda]") {
#if !SDEKIT_TORCH_CUDA
  FAIL("this LibTorch has no CUDA, yet a CUDA device is visible");
#else
  // The syncs of a run of 8 and of 16 steps (the request's checks of x_init and the final
  // finiteness check are once per run); their difference over 8 steps is the per-step count.
  // Stochastic samplers draw on a CUDA generator here, so noise needs no copy either.
  const SDEPtr sde = make_sde("vp-linear");
  FreeModel model;
  const at::Tensor xT = at::randn({256, 4}, at::TensorOptions().dtype(at::kFloat).device(kCuda));
  for (const auto& info : sampler_registry()) {
    const auto sampler = make_sampler(info.name);
    if (sampler->adaptive() || sampler->consistency()) continue;
    auto syncs = [&](int steps) {
      SampleRequest r;
      r.model = &model;
      r.sde = sde.get();
      r.times = make_time_grid(GridKind::UniformLambda, *sde->schedule(), steps, 1.0, 1e-3);
      r.x_init = xT;
      r.generator = at::make_generator<at::CUDAGeneratorImpl>(0);
      r.finite_check = FiniteCheck::Final;
      SyncCounter counter;
      sampler->run(r);
      return counter.count;
    };
    const int a = syncs(8), b = syncs(16);
    INFO(info.name << ": " << a << " syncs in 8 steps, " << b << " in 16");
    std::cout << "syncs-per-step " << info.name << " " << (b - a) / 8.0 << "\n";
    CHECK(b == a);
  }
#endif
}

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i) listing = listing || std::string(argv[i]).rfind("--list", 0) == 0;
  if (!listing && !at::hasCUDA()) {
    std::cout << "skipped: no CUDA device ("
              << (SDEKIT_TORCH_CUDA ? "this LibTorch has CUDA, but sees no device"
                                    : "this LibTorch is built without CUDA")
              << ")\n";
    return 77;
  }
  if (!listing) {
    at::globalContext().setAllowTF32CuBLAS(false);
    at::globalContext().setAllowTF32CuDNN(false);
    at::globalContext().setDeterministicCuDNN(true);
  }
  return Catch::Session().run(argc, argv);
}
