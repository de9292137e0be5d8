// The probability-flow ODE likelihood (models/likelihood_flow.hpp, docs/theory.md section 8):
// against the exact log-densities of Gaussian mixtures, Hutchinson's estimate within its
// standard error, convergence with the solver's tolerance and NFE, and bad input.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "experiments/likelihood.hpp"
#include "experiments/npy_io.hpp"
#include "models/gaussian_mixture.hpp"
#include "models/likelihood_flow.hpp"
#include "schedules/registry.hpp"
#include "solvers/registry.hpp"
#include "solvers/sample.hpp"
#include "support.hpp"

using namespace sdekit;

namespace {

struct Solve {
  at::Tensor logp;  // [n, P]: log p_T(x_T) + l_p(T)
  int64_t nfe = 0;
};

Solve solve(ScoreModel& model, const GaussianMixture& mix, const SDE& sde, const at::Tensor& x,
            Divergence div, int64_t probes, const std::string& sampler_name,
            const SamplerOptions& o, const std::vector<double>& times, bool exact_prior) {
  const SchedulePtr k = sde.schedule();
  AugmentedFlowModel aug(model, k, {mix.dim()}, x.size(0), div, probes, false, 5, at::kDouble);
  SampleRequest r;
  r.model = &aug;
  r.sde = &sde;
  r.times = times;
  r.x_init = aug.augment(x);
  const SampleResult res = make_sampler(sampler_name, o)->run(r);
  const int64_t D = mix.dim();
  const at::Tensor xT = res.x.narrow(1, 0, D), l = res.x.narrow(1, D, aug.columns());
  const double T = times.back();
  at::Tensor prior;
  if (exact_prior) {
    prior = mix.log_prob(xT, k->alpha(T), k->sigma(T));
  } else {
    const double s = sde.prior_std();
    prior = (xT * xT).sum(1).mul(-0.5 / (s * s)).sub(0.5 * D * std::log(2 * M_PI * s * s));
  }
  return {l + prior.unsqueeze(1), res.nfe};
}

}  // namespace

TEST_CASE("the ODE likelihood with the exact prior equals the mixture's exact log-density",
          "[likelihood]") {
  for (const GaussianMixture& mix : {GaussianMixture::ring2d(), GaussianMixture::gmm64()}) {
    const SDEPtr sde = make_sde("vp-linear");
    const SchedulePtr k = sde->schedule();
    GaussianMixtureModel model(mix, k);
    const double t_end = sde->default_t_end(), T = sde->domain().hi;
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(2);
    const int64_t n = mix.dim() > 2 ? 8 : 32;
    const at::Tensor x = mix.sample(n, k->alpha(t_end), k->sigma(t_end), g);
    SamplerOptions o;
    o.rtol = o.atol = 1e-8;
    const Solve s = solve(model, mix, *sde, x, Divergence::Exact, 1, "dopri5", o, {t_end, T}, true);
    const at::Tensor exact = mix.log_prob(x, k->alpha(t_end), k->sigma(t_end));
    const double err = (s.logp.select(1, 0) - exact).abs().max().item<double>();
    INFO(mix.name() << ": max |log p - exact| = " << err << ", NFE " << s.nfe);
    CHECK(err < 1e-6);
  }
}

TEST_CASE(
    "Hutchinson's estimate: within 4 standard errors of the exact divergence's value, "
    "exact for a diagonal Gaussian with Rademacher probes",
    "[likelihood]") {
  const SDEPtr sde = make_sde("vp-linear");
  const SchedulePtr k = sde->schedule();
  const double t_end = sde->default_t_end(), T = sde->domain().hi;
  SamplerOptions o;
  o.rtol = o.atol = 1e-8;
  {
    const GaussianMixture mix = GaussianMixture::gmm64();
    GaussianMixtureModel model(mix, k);
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(4);
    const at::Tensor x = mix.sample(4, k->alpha(t_end), k->sigma(t_end), g);
    const at::Tensor exact = mix.log_prob(x, k->alpha(t_end), k->sigma(t_end));
    const int64_t K = 16;
    const Solve h =
        solve(model, mix, *sde, x, Divergence::Hutchinson, K, "dopri5", o, {t_end, T}, true);
    const at::Tensor mean = h.logp.mean(1), se = h.logp.std(1) / std::sqrt(double(K));
    for (int64_t i = 0; i < x.size(0); ++i) {
      INFO("row " << i << ": Hutchinson " << mean[i].item<double>() << " +- "
                  << se[i].item<double>() << ", exact " << exact[i].item<double>());
      CHECK(se[i].item<double>() > 0);
      CHECK(std::abs((mean[i] - exact[i]).item<double>()) < 4 * se[i].item<double>() + 1e-6);
    }
  }
  {
    // A diagonal covariance: the score's Jacobian is diagonal, e^T J e = tr J for e_i = +-1.
    const at::Tensor mu = at::tensor({0.5, -1.0, 2.0}, at::kDouble);
    const at::Tensor C = at::diag(at::tensor({0.3, 1.0, 2.5}, at::kDouble));
    const GaussianMixture gauss(at::ones({1}, at::kDouble), mu.unsqueeze(0), C.unsqueeze(0));
    GaussianMixtureModel model(gauss, k, Param::Eps);
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(6);
    const at::Tensor x = gauss.sample(16, k->alpha(t_end), k->sigma(t_end), g);
    const at::Tensor exact = gauss.log_prob(x, k->alpha(t_end), k->sigma(t_end));
    for (Divergence d : {Divergence::Exact, Divergence::Hutchinson}) {
      const Solve s = solve(model, gauss, *sde, x, d, 3, "dopri5", o, {t_end, T}, true);
      CHECK((s.logp - exact.unsqueeze(1)).abs().max().item<double>() < 1e-6);
    }
  }
}

TEST_CASE("the likelihood's error falls with the NFE at the solver's order", "[likelihood]") {
  // Fixed-step Runge-Kutta on the augmented ODE, on a grid uniform in lambda from t_end to T:
  // the error of log p against the exact value at the fitted order of the integrator.
  const SDEPtr sde = make_sde("vp-linear");
  const SchedulePtr k = sde->schedule();
  const GaussianMixture mix = GaussianMixture::ring2d();
  GaussianMixtureModel model(mix, k);
  const double t_end = sde->default_t_end();
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
  const at::Tensor x = mix.sample(16, k->alpha(t_end), k->sigma(t_end), g);
  const at::Tensor exact = mix.log_prob(x, k->alpha(t_end), k->sigma(t_end));
  for (const auto& [name, order] :
       {std::pair<const char*, double>{"heun", 2.0}, std::pair<const char*, double>{"rk4", 4.0}}) {
    std::vector<double> nfe, err;
    for (int steps : {40, 80, 160, 320}) {
      SampleSpec spec;
      spec.steps = steps;
      spec.grid = GridKind::UniformLambda;
      const std::vector<double> down = spec_grid(*sde, spec);
      const Solve s = solve(model, mix, *sde, x, Divergence::Exact, 1, name, {},
                            std::vector<double>(down.rbegin(), down.rend()), true);
      nfe.push_back(double(s.nfe));
      err.push_back((s.logp.select(1, 0) - exact).abs().mean().item<double>());
    }
    const double p = sdekit::test::fitted_order(nfe, err);
    INFO(name << ": errors " << err[0] << " .. " << err.back() << ", fitted order " << p);
    CHECK(std::abs(p - order) < 0.3);
  }
}

TEST_CASE("a model without gradients is refused by name", "[likelihood]") {
  struct Opaque final : ScoreModel {
    Param param() const override { return Param::Score; }
    std::string name() const override { return "opaque"; }
    at::Tensor predict(const at::Tensor& x, const at::Tensor&) override { return -x; }
  } opaque;
  const SDEPtr sde = make_sde("vp-linear");
  AugmentedFlowModel aug(opaque, sde->schedule(), {2}, 3, Divergence::Exact, 1, false, 0,
                         at::kDouble);
  CHECK_THROWS_WITH(aug.predict_at(aug.augment(at::zeros({3, 2}, at::kDouble)), 0.5),
                    Catch::Contains("model 'opaque' cannot give gradients"));
  CHECK_THROWS_WITH(AugmentedFlowModel(opaque, sde->schedule(), {2}, 3, Divergence::Hutchinson, 0,
                                       false, 0, at::kDouble),
                    Catch::Contains("--probes must be >= 1"));
}

TEST_CASE(
    "the likelihood study: the exact log-density at tight tolerance, nll.npy, resumption, "
    "orders, and bad input",
    "[likelihood]") {
  const std::string dir =
      (std::filesystem::temp_directory_path() / "sdekit_likelihood_study").string();
  std::filesystem::remove_all(dir);
  LikelihoodSpec spec;
  spec.model = "ring2d";
  spec.n = 24;
  spec.prior = "exact";
  spec.tolerances = {1e-4, 1e-8};
  const LikelihoodReport rep = run_likelihood(spec, dir, false);
  REQUIRE(rep.cells.size() == 2);
  CHECK(rep.cells[1].max_error < 1e-6);
  CHECK(rep.cells[0].error > rep.cells[1].error);
  const at::Tensor nll = read_npy(dir + "/nll.npy");
  REQUIRE(nll.size(0) == 24);
  CHECK(std::abs(nll.mean().item<double>() - rep.cells[1].mean_nll) < 1e-12);
  CHECK(std::abs(rep.cells[1].bpd - rep.cells[1].mean_nll / (2 * std::log(2.0))) < 1e-12);
  const LikelihoodReport again = run_likelihood(spec, dir, false);
  CHECK(again.resumed == 2);
  CHECK(again.cells[1].mean_nll == rep.cells[1].mean_nll);
  {
    // A folder written before the row-keyed draws (its spec.json without "rng") is not resumed.
    const std::string sp = dir + "/spec.json";
    std::ifstream in(sp);
    nlohmann::json j;
    in >> j;
    in.close();
    REQUIRE(j.at("rng") == "rows");
    j.erase("rng");
    std::ofstream(sp) << j.dump(2);
    CHECK_THROWS_WITH(run_likelihood(spec, dir, false), Catch::Contains("rng"));
    CHECK(run_likelihood(spec, dir, true).cells[1].mean_nll == rep.cells[1].mean_nll);
  }
  // The Gaussian prior: the most accurate cell differs from the exact value by the prior's
  // mismatch, to the solver's error.
  spec.prior = "gaussian";
  const LikelihoodReport g = run_likelihood(spec, dir + "_g", false);
  CHECK(std::abs(g.exact_gap + g.cells[1].prior_mismatch) < 1e-6);
  // Fixed-step RK4 over an NFE list: the fitted order of the errors against the exact values.
  spec.prior = "exact";
  spec.sampler = "rk4";
  spec.grid = "uniform-lambda";
  spec.nfe = {640, 1280, 2560, 5120};  // the local slopes approach 4 from above (5.0 at 160)
  const LikelihoodReport rk = run_likelihood(spec, dir + "_rk4", false);
  INFO("rk4 order " << rk.order);
  CHECK(std::abs(rk.order - 4.0) < 0.3);
  for (const auto& d : {dir, dir + "_g", dir + "_rk4"}) std::filesystem::remove_all(d);

  LikelihoodSpec bad;
  bad.divergence = "magic";
  CHECK_THROWS_WITH(validate(bad), Catch::Contains("field 'divergence'"));
  bad = LikelihoodSpec{};
  bad.sampler = "euler-maruyama";
  CHECK_THROWS_WITH(validate(bad), Catch::Contains("not a deterministic ODE solver"));
  bad = LikelihoodSpec{};
  bad.rng = "generator";
  CHECK_THROWS_WITH(validate(bad), Catch::Contains("field 'rng'"));
  bad = LikelihoodSpec{};
  bad.method = "iwae";
  CHECK_THROWS_WITH(validate(bad), Catch::Contains("field 'method'"));
  bad = LikelihoodSpec{};
  bad.model = "fmnist";
  bad.data = "fashion-mnist";
  bad.prior = "exact";
  CHECK_THROWS_WITH(validate(bad), Catch::Contains("field 'prior'"));
  const std::string npy = (std::filesystem::temp_directory_path() / "sdekit_lk_bad.npy").string();
  write_npy(npy, at::zeros({4, 3}, at::kDouble));
  bad = LikelihoodSpec{};
  bad.model = "ring2d";
  bad.data = "npy:" + npy;
  bad.n = 4;
  CHECK_THROWS_WITH(run_likelihood(bad, dir + "_bad", false),
                    Catch::Contains("rows of 2 values") && Catch::Contains("[4, 3]"));
  at::Tensor nan = at::zeros({4, 2}, at::kDouble);
  nan[1][1] = NAN;
  write_npy(npy, nan);
  CHECK_THROWS_WITH(run_likelihood(bad, dir + "_bad", false),
                    Catch::Contains("row 1 holds a non-finite value"));
  std::filesystem::remove_all(dir + "_bad");
  std::filesystem::remove(npy);
}
