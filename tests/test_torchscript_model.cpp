// Score networks exported from Python as TorchScript (networks/torchscript_model.hpp): the example
// modules written by scripts/export_torchscript_example.py reproduce the outputs Python recorded
// in tests/data/torchscript/reference.json; arity and class count come from the module; a
// conditional module serves as ScoreModel (null label) and through GuidedModel; bad modules
// (made here with torch::jit::Module::define) fail with messages naming the file and what was
// expected; and a sampler runs on the example network.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/script.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/conditional.hpp"
#include "models/score_model.hpp"
#include "networks/loader.hpp"
#include "networks/torchscript_model.hpp"
#include "schedules/registry.hpp"
#include "solvers/registry.hpp"

using namespace sdekit;
namespace fs = std::filesystem;

namespace {

const fs::path kData = fs::path(SDEKIT_TEST_DATA) / "torchscript";

// Float32 tolerance against Python's outputs: |a - b| <= kTol (1 + |b|). The C++ side runs the
// same float32 graph, but its kernels may sum in another order; 1e-5 is about 80 float32 ulps at
// 1, far below the O(0.1) size of the outputs and of their differences between labels.
constexpr double kTol = 1e-5;

struct Reference {
  at::Tensor x, t, y, uncond, cond, cond_null;
  int64_t num_classes = 0;
};

at::Tensor from_json(const nlohmann::json& j, at::ScalarType dtype) {
  std::vector<double> flat;
  std::vector<int64_t> shape{static_cast<int64_t>(j.size())};
  if (j.at(0).is_array()) {
    shape.push_back(static_cast<int64_t>(j.at(0).size()));
    for (const auto& row : j)
      for (const auto& v : row) flat.push_back(v.get<double>());
  } else {
    for (const auto& v : j) flat.push_back(v.get<double>());
  }
  return at::tensor(flat, at::kDouble).reshape(shape).to(dtype);
}

const Reference& reference() {
  static const Reference ref = [] {
    std::ifstream in(kData / "reference.json");
    REQUIRE(in.good());
    const nlohmann::json j = nlohmann::json::parse(in);
    Reference r;
    r.x = from_json(j.at("x"), at::kFloat);
    r.t = from_json(j.at("t"), at::kFloat);
    r.y = from_json(j.at("y"), at::kLong);
    r.uncond = from_json(j.at("eps_mlp"), at::kDouble);
    r.cond = from_json(j.at("eps_mlp_cond"), at::kDouble);
    r.cond_null = from_json(j.at("eps_mlp_cond_null"), at::kDouble);
    r.num_classes = j.at("num_classes").get<int64_t>();
    return r;
  }();
  return ref;
}

// Largest violation of |a - b| <= kTol (1 + |b|), as a ratio: <= 1 passes.
double tol_ratio(const at::Tensor& a, const at::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  const at::Tensor ad = a.to(at::kDouble), bd = b.to(at::kDouble);
  return ((ad - bd).abs() / (kTol * (1.0 + bd.abs()))).max().item<double>();
}

std::string uncond_path() {
  return (kData / "eps_mlp.pt").string();
}
std::string cond_path() {
  return (kData / "eps_mlp_cond.pt").string();
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("sdekit_test_torchscript_" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  // Saves a module whose only method is `source` (TorchScript) and returns its path.
  std::string module(const std::string& name, const std::string& source) const {
    torch::jit::Module m("M");
    m.define(source);
    const std::string p = (path / name).string();
    m.save(p);
    return p;
  }
};

template <class F>
std::string invalid_argument_message(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  FAIL("expected std::invalid_argument");
  return {};
}

bool has(const std::string& s, const std::string& sub) {
  return s.find(sub) != std::string::npos;
}

}  // namespace

TEST_CASE("TorchScript example networks reproduce the outputs recorded in Python",
          "[models][torchscript]") {
  const Reference& ref = reference();
  const auto uncond = TorchScriptModel::load(uncond_path(), Param::Eps);
  const auto cond = TorchScriptModel::load(cond_path(), Param::Eps);

  const at::Tensor a = uncond->predict(ref.x, ref.t);
  CHECK(a.scalar_type() == at::kFloat);
  CHECK(tol_ratio(a, ref.uncond) <= 1.0);
  const at::Tensor b = cond->predict(ref.x, ref.t, ref.y);
  CHECK(tol_ratio(b, ref.cond) <= 1.0);
  // The labels matter: the conditional outputs differ from the null-label ones in most rows.
  CHECK((ref.cond - ref.cond_null).abs().max().item<double>() > 1e-3);

  SECTION("a float64 batch is computed in the module's float32 and returned as float64") {
    const at::Tensor d = uncond->predict(ref.x.to(at::kDouble), ref.t.to(at::kDouble));
    CHECK(d.scalar_type() == at::kDouble);
    CHECK(tol_ratio(d, ref.uncond) <= 1.0);
  }
  SECTION("a module converted to float64 runs in float64") {
    TempDir dir;
    torch::jit::Module m = torch::jit::load(uncond_path());
    m.to(at::kDouble);
    const std::string p = (dir.path / "eps_mlp_f64.pt").string();
    m.save(p);
    const auto f64 = TorchScriptModel::load(p, Param::Eps);
    CHECK(f64->dtype() == at::kDouble);
    CHECK(uncond->dtype() == at::kFloat);
    const at::Tensor d = f64->predict(ref.x, ref.t);
    CHECK(d.scalar_type() == at::kFloat);
    CHECK(tol_ratio(d, ref.uncond) <= 1.0);
  }
  SECTION("one scalar time for every row, and predict_at") {
    const at::Tensor x = ref.x.narrow(0, 0, 1).expand({3, 2}).contiguous();
    const at::Tensor t1 = at::full({3}, ref.t[0].item<double>(), at::kFloat);
    const at::Tensor per_row = uncond->predict(x, t1);
    CHECK(at::equal(uncond->predict(x, ref.t.narrow(0, 0, 1)), per_row));
    CHECK(at::equal(uncond->predict_at(x, ref.t[0].item<double>()), per_row));
    CHECK(tol_ratio(per_row[2], ref.uncond[0]) <= 1.0);
  }
  SECTION("the prediction is an ordinary tensor that callers may modify in place") {
    at::Tensor c = uncond->predict(ref.x, ref.t);
    CHECK_FALSE(c.is_inference());
    CHECK_NOTHROW(c.mul_(2.0));
  }
}

TEST_CASE("TorchScript models: param, arity and class count come from the module",
          "[models][torchscript]") {
  const auto uncond = TorchScriptModel::load(uncond_path(), Param::Eps);
  CHECK(uncond->param() == Param::Eps);
  CHECK(uncond->arity() == 2);
  CHECK_FALSE(uncond->conditional());
  CHECK(uncond->argument_names() == std::vector<std::string>{"x", "t"});
  CHECK(uncond->name() == "torchscript:" + uncond_path());
  CHECK(uncond->device() == at::Device(at::kCPU));

  const auto cond = TorchScriptModel::load(cond_path(), Param::X0);
  CHECK(cond->param() == Param::X0);  // as declared, whatever the network learnt
  CHECK(cond->arity() == 3);
  CHECK(cond->conditional());
  CHECK(cond->argument_names() == std::vector<std::string>{"x", "t", "y"});
  CHECK(cond->num_classes() == reference().num_classes);
  CHECK(cond->null_class() == reference().num_classes);
  // Through either base class.
  const ScoreModel& as_score = *cond;
  const ConditionalModel& as_cond = *cond;
  CHECK(as_score.param() == Param::X0);
  CHECK(as_cond.param() == Param::X0);
  CHECK(as_cond.name() == as_score.name());
  // The same count given explicitly is accepted.
  CHECK(TorchScriptModel::load(cond_path(), Param::Eps, "cpu", 3)->num_classes() == 3);

  for (Param p : all_params()) CHECK(TorchScriptModel::load(uncond_path(), p)->param() == p);
}

TEST_CASE("A conditional TorchScript model as ScoreModel uses the null label",
          "[models][torchscript]") {
  const Reference& ref = reference();
  const auto cond = TorchScriptModel::load(cond_path(), Param::Eps);
  ScoreModel& m = *cond;
  const at::Tensor plain = m.predict(ref.x, ref.t);
  CHECK(tol_ratio(plain, ref.cond_null) <= 1.0);
  const at::Tensor null = at::full({ref.x.size(0)}, cond->null_class(), at::kLong);
  CHECK(at::equal(plain, cond->predict(ref.x, ref.t, null)));
}

TEST_CASE("A conditional TorchScript model through GuidedModel", "[models][torchscript]") {
  const Reference& ref = reference();
  const auto cond = TorchScriptModel::load(cond_path(), Param::Eps);
  const at::Tensor m_y = cond->predict(ref.x, ref.t, ref.y);
  const at::Tensor null = at::full({ref.x.size(0)}, cond->null_class(), at::kLong);
  const at::Tensor m_null = cond->predict(ref.x, ref.t, null);

  SECTION("w = 0 is the conditional prediction, one call") {
    GuidedModel g(cond, ref.y, 0.0);
    CountingModel counter(g);
    CHECK(at::equal(counter.predict(ref.x, ref.t), m_y));
    CHECK(counter.count() == 1);
  }
  SECTION("w = 1 is 2 m(y) - m(null), two calls") {
    GuidedModel g(cond, ref.y, 1.0);
    CHECK(g.param() == Param::Eps);
    CountingModel counter(g);
    const at::Tensor out = counter.predict(ref.x, ref.t);
    CHECK(at::allclose(out, 2.0 * m_y - m_null, 1e-6, 1e-6));
    CHECK(counter.count() == 2);
    counter.predict(ref.x, ref.t);
    CHECK(counter.count() == 4);
  }
  SECTION("one label for every row") {
    GuidedModel g(cond, at::tensor({int64_t{2}}), 0.0);
    const at::Tensor y2 = at::full({ref.x.size(0)}, int64_t{2}, at::kLong);
    CHECK(at::equal(g.predict(ref.x, ref.t), cond->predict(ref.x, ref.t, y2)));
  }
  SECTION("labels beyond the null class are refused") {
    CHECK_THROWS_WITH(GuidedModel(cond, at::tensor({int64_t{4}}), 1.0),
                      Catch::Contains("class labels must lie in [0, 2]"));
  }
}

TEST_CASE("An unconditional TorchScript model is no ConditionalModel", "[models][torchscript]") {
  const Reference& ref = reference();
  const auto uncond = TorchScriptModel::load(uncond_path(), Param::Eps);
  const std::string m1 = invalid_argument_message([&] { uncond->num_classes(); });
  CHECK(has(m1, uncond_path()));
  CHECK(has(m1, "forward(x, t) is unconditional"));
  const std::string m2 = invalid_argument_message([&] { uncond->predict(ref.x, ref.t, ref.y); });
  CHECK(has(m2, "unconditional"));
  CHECK(has(invalid_argument_message([&] { GuidedModel(uncond, ref.y, 1.0); }), "takes no labels"));
  // As a ScoreModel it is fine.
  CHECK_NOTHROW(uncond->predict(ref.x, ref.t));
}

TEST_CASE("TorchScript models: bad files and modules name the file and what was expected",
          "[models][torchscript][errors]") {
  TempDir dir;

  SECTION("missing file") {
    const std::string p = (dir.path / "missing.pt").string();
    const std::string msg =
        invalid_argument_message([&] { TorchScriptModel::load(p, Param::Eps); });
    CHECK(has(msg, p));
    CHECK(has(msg, "no such file"));
  }
  SECTION("a file that is not a TorchScript module") {
    const std::string p = (dir.path / "garbage.pt").string();
    std::ofstream(p) << "not a zip archive";
    const std::string msg =
        invalid_argument_message([&] { TorchScriptModel::load(p, Param::Eps); });
    CHECK(has(msg, p));
    CHECK(has(msg, "cannot load a TorchScript module"));
  }
  SECTION("forward with four arguments") {
    const std::string p = dir.module("four.pt", "def forward(self, x, t, y, z):\n    return x\n");
    const std::string msg =
        invalid_argument_message([&] { TorchScriptModel::load(p, Param::Eps); });
    CHECK(has(msg, p));
    CHECK(has(msg, "expected forward(x, t) or forward(x, t, y)"));
    CHECK(has(msg, "got forward(x, t, y, z)"));
  }
  SECTION("forward with one argument, or a non-tensor one") {
    const std::string p1 = dir.module("one.pt", "def forward(self, a):\n    return a\n");
    CHECK(has(invalid_argument_message([&] { TorchScriptModel::load(p1, Param::Eps); }),
              "got forward(a)"));
    const std::string p2 =
        dir.module("float.pt", "def forward(self, x, t: float):\n    return x * t\n");
    CHECK(has(invalid_argument_message([&] { TorchScriptModel::load(p2, Param::Eps); }),
              "got forward(x, t: float)"));
  }
  SECTION("no forward method") {
    const std::string p = dir.module("noforward.pt", "def run(self, x, t):\n    return x\n");
    CHECK(has(invalid_argument_message([&] { TorchScriptModel::load(p, Param::Eps); }),
              "expected a method forward(x, t) or forward(x, t, y), found none"));
  }
  SECTION("output not shaped like x") {
    const std::string p = dir.module(
        "shape.pt", "def forward(self, x, t):\n    return torch.cat([x, x[:, :1]], 1)\n");
    const auto m = TorchScriptModel::load(p, Param::Eps);
    const std::string msg = invalid_argument_message([&] {
      m->predict(at::zeros({4, 2}), at::full({4}, 0.5));
    });
    CHECK(has(msg, p));
    CHECK(has(msg, "expected output shaped like x [4, 2], got [4, 3]"));
  }
  SECTION("output not a tensor") {
    const std::string p = dir.module("tuple.pt", "def forward(self, x, t):\n    return (x, t)\n");
    const auto m = TorchScriptModel::load(p, Param::Eps);
    const std::string msg = invalid_argument_message([&] {
      m->predict(at::zeros({4, 2}), at::full({4}, 0.5));
    });
    CHECK(has(msg, "expected forward to return a tensor shaped like x [4, 2], got Tuple"));
  }
  SECTION("forward that fails") {
    const std::string p =
        dir.module("fails.pt", "def forward(self, x, t):\n    return x.matmul(torch.ones(3, 3))\n");
    const auto m = TorchScriptModel::load(p, Param::Eps);
    const std::string msg = invalid_argument_message([&] {
      m->predict(at::zeros({4, 2}), at::full({4}, 0.5));
    });
    CHECK(has(msg, p));
    CHECK(has(msg, "forward failed on x [4, 2]"));
  }
  SECTION("bad t or labels") {
    const auto m = TorchScriptModel::load(cond_path(), Param::Eps);
    CHECK(has(invalid_argument_message([&] {
                m->predict(at::zeros({4, 2}), at::full({3}, 0.5));
              }),
              "expected t [4], one time per row, got [3]"));
    CHECK(has(invalid_argument_message([&] {
                m->predict(at::zeros({4, 2}), at::full({4}, 0.5), at::zeros({2}, at::kLong));
              }),
              "expected labels y [4], got [2]"));
    CHECK(has(invalid_argument_message([&] {
                m->predict(at::zeros({4, 2}, at::kLong), at::full({4}, 0.5));
              }),
              "expected floating-point x"));
  }
  SECTION("class count: required without the attribute, consistent with it") {
    const std::string p = dir.module("cond.pt", "def forward(self, x, t, y):\n    return x\n");
    const std::string msg =
        invalid_argument_message([&] { TorchScriptModel::load(p, Param::Eps); });
    CHECK(has(msg, p));
    CHECK(has(msg, "give the number of classes (num_classes)"));
    CHECK(TorchScriptModel::load(p, Param::Eps, "cpu", 10)->num_classes() == 10);
    CHECK(has(invalid_argument_message([&] { TorchScriptModel::load(p, Param::Eps, "cpu", 0); }),
              "num_classes must be >= 1, got 0"));
    CHECK(has(invalid_argument_message(
                  [&] { TorchScriptModel::load(cond_path(), Param::Eps, "cpu", 5); }),
              "num_classes 5 given, but the module's attribute num_classes is 3"));
    CHECK(has(invalid_argument_message(
                  [&] { TorchScriptModel::load(uncond_path(), Param::Eps, "cpu", 5); }),
              "num_classes 5 given for an unconditional forward(x, t)"));
  }
  SECTION("devices") {
    CHECK(has(invalid_argument_message(
                  [&] { TorchScriptModel::load(uncond_path(), Param::Eps, "gpu0"); }),
              "unknown device 'gpu0'"));
    if (!at::hasCUDA()) {
      CHECK(has(invalid_argument_message(
                    [&] { TorchScriptModel::load(uncond_path(), Param::Eps, "cuda"); }),
                "CUDA is not available"));
    }
  }
}

TEST_CASE("Sampling with a TorchScript network", "[models][torchscript][samplers]") {
  const SDEPtr sde = make_sde("vp-linear");
  const auto heun = make_sampler("heun");
  const int64_t n = 16;
  const at::Tensor xT = at::randn({n, 2}, at::make_generator<at::CPUGeneratorImpl>(5));
  auto run = [&](ScoreModel& model) {
    SampleRequest r;
    r.model = &model;
    r.sde = sde.get();
    r.times = {1.0, 0.6, 0.3, 0.1, 0.001};
    r.x_init = xT;
    return heun->run(r);
  };

  const auto uncond = TorchScriptModel::load(uncond_path(), Param::Eps);
  const SampleResult a = run(*uncond);
  CHECK(a.x.sizes() == at::IntArrayRef({n, 2}));
  CHECK(a.x.scalar_type() == at::kFloat);
  CHECK(at::isfinite(a.x).all().item<bool>());
  CHECK(a.steps == 4);
  CHECK(a.nfe > 0);

  const auto cond = TorchScriptModel::load(cond_path(), Param::Eps);
  GuidedModel guided(cond, at::tensor({int64_t{1}}), 1.0);
  const SampleResult b = run(guided);
  CHECK(b.x.sizes() == at::IntArrayRef({n, 2}));
  CHECK(at::isfinite(b.x).all().item<bool>());
  CHECK(b.nfe == 2 * a.nfe);  // two network calls per predict
}

TEST_CASE("The committed U-Net's TorchScript export is the U-Net itself", "[models][torchscript]") {
  // data/fmnist/unet_ts.pt (scripts/export_unet_torchscript.py, class 0) against --model fmnist
  // --class 0: the same layers and weights, so the same numbers.
  const SDEPtr sde = make_sde("vp-linear");
  ModelOptions o;
  o.label = 0;
  const LoadedModel native = load_model("fmnist", sde->schedule(), o);
  const auto ts = TorchScriptModel::load(sdekit_data_dir() + "/fmnist/unet_ts.pt", Param::Eps);
  const at::Tensor x = at::randn({4, 1, 28, 28}, at::make_generator<at::CPUGeneratorImpl>(8));
  for (double t : {0.95, 0.4, 0.01}) {
    const at::Tensor a = ts->predict_at(x, t), b = native.model->predict_at(x, t);
    CHECK((a - b).abs().max().item<double>() <= 1e-6 * b.abs().max().item<double>());
  }
}
