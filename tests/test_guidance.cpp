// Classifier guidance (models/classifier_guidance.hpp, docs/theory.md section 5.2): the exact
// mixture classifier against component scores and autograd, the guided prediction in every
// parameterization, sampling toward one component against its exact moments, the loader's
// checks, and the noise-conditional Fashion-MNIST classifier.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <vector>

#include "datasets/idx.hpp"
#include "experiments/guidance_table.hpp"
#include "models/classifier_guidance.hpp"
#include "models/gaussian_mixture.hpp"
#include "networks/guidance_classifiers.hpp"
#include "networks/loader.hpp"
#include "networks/noisy_classifier.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/registry.hpp"
#include "solvers/sample.hpp"
#include "support.hpp"

using namespace sdekit;
using sdekit::test::check_moments;

namespace {

// Component k alone, as its own one-component mixture.
GaussianMixture component(const GaussianMixture& mix, int64_t k) {
  return GaussianMixture(at::ones({1}, at::kDouble), mix.means()[k].unsqueeze(0),
                         mix.covariances()[k].unsqueeze(0), "component");
}

// The same logits, with the gradient left to the base class's autograd path.
class AutogradClassifier final : public NoiseClassifier {
 public:
  explicit AutogradClassifier(std::shared_ptr<NoiseClassifier> c) : c_(std::move(c)) {}
  std::string name() const override { return "autograd"; }
  int64_t num_classes() const override { return c_->num_classes(); }
  at::Tensor logits(const at::Tensor& x, const at::Tensor& t) override { return c_->logits(x, t); }

 private:
  std::shared_ptr<NoiseClassifier> c_;
};

double max_abs(const at::Tensor& a) {
  return a.abs().max().item<double>();
}

}  // namespace

TEST_CASE("with the exact classifier at scale 1 the guided score is the component's score",
          "[guidance]") {
  for (const GaussianMixture& mix : {GaussianMixture::ring2d(), GaussianMixture::gmm64()}) {
    for (const char* sde_name : {"vp-linear", "ve", "edm"}) {
      const SDEPtr sde = make_sde(sde_name);
      const SchedulePtr k = sde->schedule();
      auto clf = std::make_shared<MixtureClassifier>(mix, k);
      at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
      for (int64_t cls : {int64_t(0), mix.components() - 1}) {
        const GaussianMixture comp = component(mix, cls);
        for (Param p : {Param::Score, Param::Eps, Param::X0, Param::V}) {
          auto base = std::make_shared<GaussianMixtureModel>(mix, k, p);
          ClassifierGuidedModel guided(base, clf, k, at::full({1}, cls, at::kLong), 1.0);
          GaussianMixtureModel exact(comp, k, p);
          for (double frac : {0.02, 0.3, 0.9}) {
            const double t =
                sde->default_t_end() + frac * (sde->domain().hi - sde->default_t_end());
            // Points around the component's noised mean, where its score is O(1 / sigma^2).
            const at::Tensor x =
                k->alpha(t) * mix.means()[cls] +
                std::max(1.0, k->sigma(t)) * at::randn({16, mix.dim()}, g, at::kDouble);
            const at::Tensor want = exact.predict_at(x, t);
            const at::Tensor got = guided.predict_at(x, t);
            const at::Tensor got_rows = guided.predict(x, at::full({16}, t, at::kDouble));
            INFO(mix.name() << " " << sde_name << " class " << cls << " " << param_name(p) << " t "
                            << t);
            const double scale = std::max(1.0, max_abs(want));
            CHECK(max_abs(got - want) < 1e-10 * scale);
            CHECK(max_abs(got_rows - want) < 1e-10 * scale);
          }
        }
      }
    }
  }
}

TEST_CASE("the exact classifier's closed-form gradient equals autograd through its logits",
          "[guidance]") {
  const GaussianMixture mix = GaussianMixture::gmm64();
  const SchedulePtr k = make_sde("vp-linear")->schedule();
  auto exact = std::make_shared<MixtureClassifier>(mix, k);
  AutogradClassifier ag(exact);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor x = at::randn({32, 64}, g, at::kDouble);
  const at::Tensor y = at::arange(32, at::kLong).remainder(5);
  for (double t : {0.05, 0.4, 0.8}) {
    const at::Tensor tt = at::full({32}, t, at::kDouble);
    const at::Tensor a = exact->log_prob_grad(x, tt, y), b = ag.log_prob_grad(x, tt, y);
    CHECK(max_abs(a - b) < 1e-10 * std::max(1.0, max_abs(a)));
    // The logits' softmax is the responsibility: the mixture's log-density is their logsumexp.
    const at::Tensor lp = at::logsumexp(exact->logits(x, tt), {1});
    CHECK(max_abs(lp - mix.log_prob(x, k->alpha(t), k->sigma(t))) < 1e-10);
  }
}

TEST_CASE("scale 0 calls no classifier and leaves the prediction unchanged, counts are kept",
          "[guidance]") {
  const GaussianMixture mix = GaussianMixture::ring2d();
  const SDEPtr sde = make_sde("vp-linear");
  const SchedulePtr k = sde->schedule();
  auto base = std::make_shared<GaussianMixtureModel>(mix, k, Param::Eps);
  auto clf = std::make_shared<MixtureClassifier>(mix, k);
  ClassifierGuidedModel off(base, clf, k, at::full({1}, 2, at::kLong), 0.0);
  ClassifierGuidedModel on(base, clf, k, at::full({1}, 2, at::kLong), 3.0);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(1);
  const at::Tensor x = at::randn({8, 2}, g, at::kDouble);
  CHECK(at::equal(off.predict_at(x, 0.3), base->predict_at(x, 0.3)));
  CHECK(off.classifier_calls() == 0);
  // Scale s adds s times the classifier gradient to the score: eps = -sigma score.
  const at::Tensor diff = on.predict_at(x, 0.3) - base->predict_at(x, 0.3);
  const at::Tensor grad =
      clf->log_prob_grad(x, at::full({8}, 0.3, at::kDouble), at::full({8}, 2, at::kLong));
  CHECK(max_abs(diff + 3.0 * k->sigma(0.3) * grad) < 1e-12);
  CHECK(on.classifier_calls() == 1);
  CHECK(on.calls_per_predict() == 1);
  CHECK_THROWS_WITH(ClassifierGuidedModel(base, clf, k, at::full({1}, 8, at::kLong), 1.0),
                    Catch::Contains("--class must lie in [0, 7]"));
  CHECK_THROWS_WITH(ClassifierGuidedModel(base, clf, k, at::full({1}, 0, at::kLong), NAN),
                    Catch::Contains("--classifier-scale must be finite"));
}

TEST_CASE("guided sampling toward one component matches its exact moments (ODE and SDE)",
          "[guidance][moments]") {
  // Scale 1 with the exact classifier samples component k's noised marginal at t_end:
  // mean alpha mu_k, covariance alpha^2 C_k + sigma^2 I. Tolerance: 4.5 standard errors per
  // entry (estimated from the samples) plus an allowance for the discretisation bias, measured
  // below it at these step counts: the ODE (dpmpp-2m) is deterministic from x_T, the SDE
  // (sde-dpmpp-2m, 200 steps) weak first order. On gmm64 the ODE's largest covariance error
  // (seeds 1, 2, 3, 9, either noise stream) is 0.085 at 20 steps, 0.041 at 40, 0.020 at 80 and
  // 0.014 at 160 (there the sampling noise): hence 80 steps and 0.03.
  struct Case {
    GaussianMixture mix;
    int64_t cls, n, ode_steps;
    double bias;
  };
  for (const Case& c : {Case{GaussianMixture::ring2d(), 3, 8000, 40, 0.004},
                        Case{GaussianMixture::gmm64(), 1, 3000, 80, 0.03}}) {
    const SDEPtr sde = make_sde("vp-linear");
    const SchedulePtr k = sde->schedule();
    const double t_end = sde->default_t_end();
    const GaussianMixture comp = component(c.mix, c.cls);
    const at::Tensor m = comp.mean(k->alpha(t_end)),
                     C = comp.covariance(k->alpha(t_end), k->sigma(t_end));
    ModelOptions o;
    o.classifier = "exact";
    o.label = c.cls;
    const std::string spec = c.mix.name() == "ring2d" ? "ring2d" : "gmm64";
    LoadedModel lm = load_model(spec, k, o);
    REQUIRE(lm.mixture);
    CHECK(lm.mixture->components() == 1);
    CHECK(at::allclose(lm.mixture->means()[0], c.mix.means()[c.cls]));
    for (const auto& [name, steps] : {std::pair<const char*, int64_t>{"dpmpp-2m", c.ode_steps},
                                      std::pair<const char*, int64_t>{"sde-dpmpp-2m", 200}}) {
      INFO(spec << " " << name);
      SampleSpec s;
      s.steps = steps;
      s.n = c.n;
      s.event_shape = {c.mix.dim()};
      s.options = at::kDouble;
      s.seed = 9;
      const SampleResult res = sample(*make_sampler(name), *lm.model, *sde, s);
      check_moments(res.x, m, C, 4.5, c.bias);
      CHECK(lm.classifier_guided->classifier_calls() > 0);
    }
  }
}

TEST_CASE("scale 0 samples the whole mixture, balanced classes at scale 1 its equal-weight form",
          "[guidance][moments]") {
  const SDEPtr sde = make_sde("vp-linear");
  const SchedulePtr k = sde->schedule();
  const double t_end = sde->default_t_end();
  const GaussianMixture mix = GaussianMixture::ring2d();
  ModelOptions o;
  o.classifier = "exact";
  o.classifier_scale = 0.0;
  o.label = 2;
  LoadedModel off = load_model("ring2d", k, o);
  REQUIRE(off.mixture);
  CHECK(off.mixture->components() == 8);
  SampleSpec s;
  s.steps = 40;
  s.n = 8000;
  s.event_shape = {2};
  s.options = at::kDouble;
  s.seed = 4;
  const auto sampler = make_sampler("dpmpp-2m");
  const SampleResult guided = sample(*sampler, *off.model, *sde, s);
  GaussianMixtureModel plain(mix, k);
  CHECK(at::equal(guided.x, sample(*sampler, plain, *sde, s).x));
  check_moments(guided.x, mix.mean(k->alpha(t_end)),
                mix.covariance(k->alpha(t_end), k->sigma(t_end)), 4.5, 0.01);
  // Balanced classes (row i toward component i mod 8) at scale 1: the rows of each class follow
  // their component.
  o.classifier_scale = 1.0;
  o.label = -1;
  LoadedModel bal = load_model("ring2d", k, o);
  REQUIRE(bal.mixture);
  CHECK(bal.mixture->components() == 8);
  const at::Tensor x = sample(*sampler, *bal.model, *sde, s).x;
  for (int64_t cls : {0, 5}) {
    const at::Tensor rows = at::arange(cls, s.n, 8, at::kLong);
    const GaussianMixture comp = component(mix, cls);
    check_moments(x.index_select(0, rows), comp.mean(k->alpha(t_end)),
                  comp.covariance(k->alpha(t_end), k->sigma(t_end)), 4.5, 0.004);
  }
}

TEST_CASE("the loader's checks of classifier guidance name the problem", "[guidance]") {
  const SchedulePtr k = make_sde("vp-linear")->schedule();
  ModelOptions o;
  o.classifier = "exact";
  o.label = 9;
  CHECK_THROWS_WITH(load_model("ring2d", k, o), Catch::Contains("--class must lie in [0, 7]") &&
                                                    Catch::Contains("--classifier exact"));
  o.label = 0;
  o.unconditional = true;
  CHECK_THROWS_WITH(load_model("ring2d", k, o), Catch::Contains("not class-conditional"));
  o.unconditional = false;
  o.classifier = "mystery";
  CHECK_THROWS_WITH(load_model("ring2d", k, o), Catch::Contains("unknown --classifier 'mystery'") &&
                                                    Catch::Contains("fmnist-noisy"));
  o.classifier = "noisy:/nonexistent/c.pt";
  CHECK_THROWS_WITH(load_model("ring2d", k, o), Catch::Contains("does not exist"));
  o.classifier = "exact";
  o.classifier_scale = INFINITY;
  CHECK_THROWS_WITH(load_model("ring2d", k, o), Catch::Contains("--classifier-scale"));
  ModelOptions u;
  u.unconditional = true;
  CHECK_THROWS_WITH(load_model("ring2d", k, u), Catch::Contains("without --classifier"));
  // The committed Fashion-MNIST model and classifier: 10 classes each; the exact classifier
  // needs an exact model; the noise-conditional one its own SDE.
  ModelOptions f;
  f.classifier = "exact";
  CHECK_THROWS_WITH(load_model("fmnist", k, f), Catch::Contains("no exact mixture"));
  f.classifier = "fmnist-noisy";
  CHECK_THROWS_WITH(load_model("fmnist", make_sde("edm")->schedule(), f),
                    Catch::Contains("sample with --sde vp-linear"));
  CHECK_THROWS_WITH(load_model("ring2d", k, f), Catch::Contains("1x28x28"));
  f.label = 10;
  CHECK_THROWS_WITH(load_model("fmnist", k, f), Catch::Contains("--class must lie in [0, 9]"));
  f.label = 3;
  f.guidance = 1.0;
  f.unconditional = true;
  CHECK_THROWS_WITH(load_model("fmnist", k, f), Catch::Contains("--guidance with --unconditional"));
}

TEST_CASE(
    "the committed noise-conditional classifier: accurate at small t, guidance raises the "
    "class probability",
    "[guidance][fmnist]") {
  const std::string path =
      (std::filesystem::path(sdekit_data_dir()) / "fmnist" / "classifier_noisy.pt").string();
  REQUIRE(std::filesystem::exists(path));
  const auto clf = NoisyImageClassifier::load(path);
  CHECK(clf->sde() == "vp-linear");
  if (std::filesystem::exists(default_fashion_mnist_dir())) {
    const ImageDataset test = load_fashion_mnist("test");
    // The bar: at least 90% on the whole test set at small t (data/fmnist/README.md lists
    // 91.21% at t = 1e-3 and 90.65% at t = 0.05 with noise seed 1).
    CHECK(clf->accuracy_at(1e-3, test.images, test.labels, 1) >= 0.90);
    CHECK(clf->accuracy_at(0.05, test.images, test.labels, 1) >= 0.90);
    // Near t = 1 the data is gone: chance level.
    const at::Tensor x = test.images.narrow(0, 0, 2000), y = test.labels.narrow(0, 0, 2000);
    CHECK(clf->accuracy_at(1.0, x, y, 1) < 0.2);
  }
  // The guided U-Net's class probability under the classifier at t_end grows with the scale.
  const SDEPtr sde = make_sde("vp-linear");
  const SchedulePtr k = sde->schedule();
  std::vector<double> p;
  for (double s : {0.0, 4.0}) {
    ModelOptions o;
    o.classifier = "fmnist-noisy";
    o.classifier_scale = s;
    o.unconditional = true;
    o.label = 7;
    LoadedModel lm = load_model("fmnist", k, o);
    SampleSpec spec;
    spec.steps = 8;
    spec.n = 40;
    spec.event_shape = lm.event_shape;
    spec.seed = 2;
    const SampleResult res = sample(*make_sampler("dpmpp-2m"), *lm.model, *sde, spec);
    const at::Tensor l = clf->logits(res.x, at::full({1}, sde->default_t_end())).detach();
    p.push_back(at::softmax(l, 1).select(1, 7).mean().item<double>());
  }
  INFO("mean p(class 7 | x) at s = 0 and 4: " << p[0] << ", " << p[1]);
  CHECK(p[1] > p[0] + 0.3);
}

TEST_CASE("the guidance table: rows, counts, resumption, and guidance that raises the accuracy",
          "[guidance][fmnist]") {
  if (!std::filesystem::exists(default_fashion_mnist_dir())) {
    WARN("Fashion-MNIST is not installed; skipped");
    return;
  }
  GuidanceTableSpec spec;
  spec.steps = 3;
  spec.n = 60;
  spec.scales = {0, 6};
  spec.weights = {0, 2};
  const std::string dir =
      (std::filesystem::temp_directory_path() / "sdekit_guidance_table").string();
  std::filesystem::remove_all(dir);
  const GuidanceTableReport rep = run_guidance_table(spec, dir, false);
  REQUIRE(rep.rows.size() == 4);
  CHECK(rep.computed == 4);
  const GuidanceRow &s0 = rep.rows[0], &s6 = rep.rows[1], &w0 = rep.rows[2], &w2 = rep.rows[3];
  CHECK(s0.classifier_calls == 0);
  CHECK(s6.classifier_calls == 3);
  CHECK(s6.nfe == 3);
  CHECK(w0.nfe == 3);
  CHECK(w2.nfe == 6);
  // The unconditional model ignores the class (chance level, 10%); guidance of either kind
  // moves the samples toward it.
  CHECK(s6.accuracy > s0.accuracy + 0.2);
  CHECK(w2.accuracy >= w0.accuracy);
  CHECK(std::isfinite(rep.floor_fd_all));
  CHECK(std::isfinite(rep.floor_fd_class));
  for (const auto& r : rep.rows) {
    CHECK(std::isfinite(r.fd_all));
    CHECK(std::isfinite(r.fd_class));
  }
  const GuidanceTableReport again = run_guidance_table(spec, dir, false);
  CHECK(again.resumed == 4);
  CHECK(again.computed == 0);
  CHECK(again.rows[1].accuracy == s6.accuracy);
  spec.n = 55;
  CHECK_THROWS_WITH(validate(spec), Catch::Contains("field 'n'"));
  spec.n = 60;
  spec.scales = {1, 1};
  CHECK_THROWS_WITH(validate(spec), Catch::Contains("appears twice"));
  spec.scales = {1};
  spec.model = "ring2d";
  CHECK_THROWS_WITH(validate(spec), Catch::Contains("field 'model'"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("a TorchScript classifier: autograd through the module equals the closed form",
          "[guidance][torchscript]") {
  const std::string path = std::string(SDEKIT_TEST_DATA) + "/torchscript/ring2d_classifier.pt";
  const SchedulePtr k = make_sde("vp-linear")->schedule();
  const GaussianMixture mix = GaussianMixture::ring2d();
  const auto ts = load_noise_classifier("torchscript:" + path, k, {2}, std::nullopt);
  CHECK(ts->num_classes() == 8);
  MixtureClassifier exact(mix, k);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(8);
  const at::Tensor x = 1.5 * at::randn({64, 2}, g, at::kDouble);
  const at::Tensor y = at::arange(64, at::kLong).remainder(8);
  for (double t : {0.01, 0.2, 0.6}) {
    const at::Tensor tt = at::full({64}, t, at::kDouble);
    const at::Tensor want = exact.log_prob_grad(x, tt, y);
    CHECK(max_abs(ts->log_prob_grad(x, tt, y) - want) < 1e-9 * std::max(1.0, max_abs(want)));
  }
  // Guided sampling through it equals guidance by the exact classifier.
  ModelOptions a, b;
  a.classifier = "torchscript:" + path;
  b.classifier = "exact";
  a.label = b.label = 4;
  a.classifier_scale = b.classifier_scale = 2.0;
  LoadedModel la = load_model("ring2d", k, a), lb = load_model("ring2d", k, b);
  CHECK_FALSE(la.mixture);  // no closed-form target at s = 2
  const at::Tensor xs = at::randn({32, 2}, g, at::kDouble);
  CHECK(max_abs(la.model->predict_at(xs, 0.3) - lb.model->predict_at(xs, 0.3)) < 1e-9);
  // A classifier with the wrong class count for a class-conditional model, and a truncated file.
  ModelOptions f;
  f.classifier = "torchscript:" + path;
  f.param = "eps";
  f.event_shape = {2};
  const std::string cond =
      "torchscript:" + std::string(SDEKIT_TEST_DATA) + "/torchscript/eps_mlp_cond.pt";
  CHECK_THROWS_WITH(load_model(cond, k, f),
                    Catch::Contains("has 8 classes") && Catch::Contains("must agree"));
  // A classifier whose forward does not take the model's samples fails on its probe.
  ModelOptions img;
  img.classifier = "torchscript:" + path;
  CHECK_THROWS_WITH(load_model("fmnist", k, img),
                    Catch::Contains("forward failed on x [1, 1, 28, 28]"));
  const std::string cut =
      (std::filesystem::temp_directory_path() / "sdekit_truncated_classifier.pt").string();
  {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream out(cut, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  CHECK_THROWS_WITH(load_noise_classifier("torchscript:" + cut, k, {2}, std::nullopt),
                    Catch::Contains("TorchScript classifier"));
  std::filesystem::remove(cut);
}

TEST_CASE("classifier guidance on top of classifier-free guidance", "[guidance][fmnist]") {
  const SchedulePtr k = make_sde("vp-linear")->schedule();
  ModelOptions cfg;
  cfg.label = 3;
  cfg.guidance = 1.5;
  ModelOptions both = cfg;
  both.classifier = "fmnist-noisy";
  both.classifier_scale = 2.0;
  LoadedModel a = load_model("fmnist", k, cfg), b = load_model("fmnist", k, both);
  CHECK(b.model->calls_per_predict() == 2);  // NFE: the two network calls of the CFG model
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(1);
  const at::Tensor x = at::randn({2, 1, 28, 28}, g, at::kFloat);
  const double t = 0.4;
  // eps = -sigma score: the classifier's term enters the CFG prediction as -sigma s grad.
  const auto clf = load_noise_classifier("fmnist-noisy", k, {1, 28, 28}, std::nullopt);
  const at::Tensor grad =
      clf->log_prob_grad(x, at::full({2}, t, at::kFloat), at::full({2}, 3, at::kLong));
  const at::Tensor diff = b.model->predict_at(x, t) - a.model->predict_at(x, t);
  const at::Tensor want = grad * (-k->sigma(t) * 2.0);
  CHECK((diff - want).abs().max().item<double>() < 1e-4 * std::max(1.0, max_abs(want)));
  CHECK(b.classifier_guided->classifier_calls() == 1);
  CHECK(diff.abs().max().item<double>() > 0);
  // Scale 0 on top of CFG is CFG itself.
  both.classifier_scale = 0.0;
  LoadedModel c = load_model("fmnist", k, both);
  CHECK(at::equal(c.model->predict_at(x, t), a.model->predict_at(x, t)));
}
