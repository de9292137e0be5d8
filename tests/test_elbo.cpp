// The variational bounds (experiments/elbo.hpp, docs/theory.md section 9): the discretized
// decoder is a probability distribution over the 256 bins; the continuous-time bound equals the
// exact log-density for the exact score and prior, and lies above it for a wrong model, as does
// the ODE's NLL of that model; DDPM's discrete bound lies above the exact NLL and closes as the
// table grows; the command's cells, resume and errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <memory>
#include <vector>

#include "experiments/elbo.hpp"
#include "experiments/likelihood.hpp"
#include "experiments/npy_io.hpp"
#include "models/gaussian_mixture.hpp"
#include "models/likelihood_flow.hpp"
#include "schedules/registry.hpp"
#include "schedules/vp_discrete.hpp"
#include "solvers/registry.hpp"
#include "solvers/sample.hpp"
#include "support.hpp"

using namespace sdekit;

namespace {

struct Gap {
  double mean, se;
};

// Mean and standard error over rows of bound - (-log p).
Gap gap_of(const at::Tensor& bound, const at::Tensor& exact_logp) {
  const at::Tensor d = bound + exact_logp;
  return {d.mean().item<double>(), d.std().item<double>() / std::sqrt(double(d.size(0)))};
}

// A mixture unlike `mix`: means scaled by 1.15, covariances by 1.6.
GaussianMixture wrong_mixture(const GaussianMixture& mix) {
  return GaussianMixture(mix.weights(), mix.means() * 1.15, mix.covariances() * 1.6, "wrong");
}

// A fresh folder under the temporary directory, removed at the end of the test.
struct ScratchDir {
  explicit ScratchDir(const std::string& name)
      : path(std::filesystem::temp_directory_path() / ("sdekit_" + name)) {
    std::filesystem::remove_all(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
  std::filesystem::path path;
};

}  // namespace

TEST_CASE(
    "the discretized Gaussian decoder sums to one over the 256 bins and is stable in the tails",
    "[elbo]") {
  const at::Tensor bins = at::arange(256, at::kDouble).div(127.5).sub(1.0);
  for (double mean : {-1.7, -1.0, -0.31, 0.0, 0.5, 1.0, 2.5})
    for (double sd : {1e-3, 1e-2, 0.3, 4.0}) {
      const at::Tensor lp =
          discretized_gaussian_log_prob(bins, at::full({256}, mean, at::kDouble), sd);
      INFO("mean " << mean << ", std " << sd);
      REQUIRE(at::isfinite(lp).all().item<bool>());
      CHECK(std::abs(lp.exp().sum().item<double>() - 1.0) < 1e-12);
      // Interior bins: Phi(u) - Phi(l), directly.
      for (int b : {1, 77, 128, 254}) {
        const double x = -1.0 + 2.0 * b / 255.0;
        const double zl = (x - 1.0 / 255 - mean) / sd, zu = (x + 1.0 / 255 - mean) / sd;
        const double p = 0.5 * (std::erfc(-zu / std::sqrt(2.0)) - std::erfc(-zl / std::sqrt(2.0)));
        if (p > 1e-200) CHECK(std::abs(std::exp(lp[b].item<double>()) - p) <= 1e-12 + 1e-9 * p);
      }
    }
  // 500 standard deviations from the bin: finite, near the Gaussian tail's log-density.
  const at::Tensor far = discretized_gaussian_log_prob(at::full({1}, 0.0, at::kDouble),
                                                       at::full({1}, 0.5, at::kDouble), 1e-3);
  CHECK(std::isfinite(far.item<double>()));
  CHECK(far.item<double>() < -1e5);
}

TEST_CASE("the continuous-time bound equals -log p(t_end) for the exact score and prior",
          "[elbo]") {
  struct Case {
    GaussianMixture mix;
    std::string sde;
    int64_t n, K;
  };
  for (const Case& c : {Case{GaussianMixture::ring2d(), "vp-linear", 4096, 256},
                        Case{GaussianMixture::ring2d(), "ve", 4096, 256},
                        Case{GaussianMixture::gmm64(), "vp-cosine", 2048, 256}}) {
    const SDEPtr sde = make_sde(c.sde);
    const SchedulePtr k = sde->schedule();
    GaussianMixtureModel model(c.mix, k);
    const double t_end = sde->default_t_end(), T = sde->domain().hi;
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(11);
    const at::Tensor y = c.mix.sample(c.n, k->alpha(t_end), k->sigma(t_end), g);
    ElboOptions o;
    o.timesteps = c.K;
    o.seed = 3;
    o.log_prior = [&](const at::Tensor& x) { return c.mix.log_prob(x, k->alpha(T), k->sigma(T)); };
    const ElboRows r = continuous_elbo(model, *k, {c.mix.dim()}, y, t_end, T, o);
    const Gap gp = gap_of(r.total, c.mix.log_prob(y, k->alpha(t_end), k->sigma(t_end)));
    INFO(c.mix.name() << " " << c.sde << ": bound - exact NLL = " << gp.mean << " +- " << gp.se);
    CHECK(std::abs(gp.mean) < 4.0 * gp.se);
    CHECK(gp.se < (c.mix.dim() > 2 ? 0.07 : 0.02));  // the check has power
    CHECK(r.nfe == c.K + 1);
    CHECK((r.prior + r.diffusion + r.decoder - r.total).abs().max().item<double>() < 1e-12);
  }
}

TEST_CASE(
    "for a wrong model the continuous bound lies above the exact NLL, as does the model's ODE NLL",
    "[elbo]") {
  const GaussianMixture mix = GaussianMixture::ring2d();
  const SDEPtr sde = make_sde("vp-linear");
  const SchedulePtr k = sde->schedule();
  GaussianMixtureModel wrong(wrong_mixture(mix), k);
  const double t_end = sde->default_t_end(), T = sde->domain().hi;
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(12);
  const int64_t n = 2048;
  const at::Tensor y = mix.sample(n, k->alpha(t_end), k->sigma(t_end), g);
  ElboOptions o;
  o.timesteps = 256;
  o.prior_std = sde->prior_std();
  const ElboRows r = continuous_elbo(wrong, *k, {2}, y, t_end, T, o);
  const at::Tensor exact = mix.log_prob(y, k->alpha(t_end), k->sigma(t_end));
  const Gap to_exact = gap_of(r.total, exact);
  // The model's ODE log-likelihood (exact divergence, Gaussian prior).
  AugmentedFlowModel aug(wrong, k, {2}, n, Divergence::Exact, 1, false, 0, at::kDouble);
  SampleRequest req;
  req.model = &aug;
  req.sde = sde.get();
  req.times = {t_end, T};
  req.x_init = aug.augment(y);
  SamplerOptions so;
  so.rtol = so.atol = 1e-7;
  const SampleResult res = make_sampler("dopri5", so)->run(req);
  const at::Tensor xT = res.x.narrow(1, 0, 2);
  const at::Tensor ode_logp = res.x.select(1, 2) - (xT * xT).sum(1).mul(0.5) - std::log(2.0 * M_PI);
  const Gap to_ode = gap_of(r.total, ode_logp);
  const Gap ode_to_exact = gap_of(-ode_logp, exact);
  INFO("bound - exact NLL " << to_exact.mean << " +- " << to_exact.se << "; bound - ODE NLL "
                            << to_ode.mean << " +- " << to_ode.se << "; ODE NLL - exact "
                            << ode_to_exact.mean << " +- " << ode_to_exact.se);
  CHECK(to_exact.mean > 4.0 * to_exact.se);
  CHECK(ode_to_exact.mean > 4.0 * ode_to_exact.se);
  // The bound is on the reverse SDE's density, the ODE's NLL on the flow's: for a wrong model no
  // order between them follows (measured here: within a standard error of each other).
  CHECK(std::abs(to_ode.mean) < 0.1 * to_exact.mean);
}

TEST_CASE("DDPM's discrete bound lies above the exact NLL and closes as the table grows",
          "[elbo]") {
  const GaussianMixture mix = GaussianMixture::ring2d();
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(13);
  const int64_t n = 2048;
  const at::Tensor x0 = mix.sample(n, 1.0, 0.0, g);
  const at::Tensor exact = mix.log_prob(x0, 1.0, 0.0);
  std::vector<Gap> gaps;
  for (int N : {125, 500, 2000}) {
    // The same continuous-time limit (beta(t) from 0.1 to 20) at N steps.
    const auto k = std::make_shared<VPDiscrete>(VPDiscrete::linear(N, 0.1 / N, 20.0 / N));
    GaussianMixtureModel model(mix, k);
    ElboOptions o;
    o.timesteps = N - 1;  // the exact sum over n: only the noise draws vary
    o.seed = 4;
    const ElboRows r = ddpm_elbo(model, *k, {2}, x0, o);
    const Gap gp = gap_of(r.total, exact);
    INFO("N = " << N << ": bound - exact NLL = " << gp.mean << " +- " << gp.se);
    CHECK(gp.mean > -4.0 * gp.se);
    CHECK(r.nfe == N);
    gaps.push_back(gp);
  }
  INFO("gaps " << gaps[0].mean << ", " << gaps[1].mean << ", " << gaps[2].mean);
  CHECK(gaps[0].mean > 4.0 * gaps[0].se);
  CHECK(gaps[0].mean - gaps[1].mean > 3.0 * std::hypot(gaps[0].se, gaps[1].se));
  CHECK(gaps[2].mean < 0.5 * gaps[0].mean);
}

TEST_CASE("DDPM bound: the posterior variance, the discretized decoder's data check", "[elbo]") {
  const GaussianMixture mix = GaussianMixture::ring2d();
  const auto k = std::make_shared<VPDiscrete>(VPDiscrete::linear());
  GaussianMixtureModel model(mix, k);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(14);
  const at::Tensor x0 = mix.sample(256, 1.0, 0.0, g);
  ElboOptions o;
  o.timesteps = 1000;
  CHECK_THROWS_WITH(ddpm_elbo(model, *k, {2}, x0, o), Catch::Contains("timesteps"));
  o.timesteps = 32;
  o.discretized = true;
  CHECK_THROWS_WITH(ddpm_elbo(model, *k, {2}, x0, o), Catch::Contains("8-bit"));
  // On 8-bit data the discretized decoder gives a probability: L_0 >= 0.
  const at::Tensor bytes = ((x0.clamp(-1, 1) + 1.0) * 127.5).round().div(127.5).sub(1.0);
  const ElboRows r = ddpm_elbo(model, *k, {2}, bytes, o);
  CHECK(r.decoder.min().item<double>() >= 0.0);
  o.discretized = false;
  o.posterior_variance = true;
  const ElboRows rp = ddpm_elbo(model, *k, {2}, x0, o);
  const Gap gp = gap_of(rp.total, mix.log_prob(x0, 1.0, 0.0));
  CHECK(gp.mean > -4.0 * gp.se);
}

TEST_CASE("sdekit likelihood --method elbo: one resumable cell, the gap, its errors", "[elbo]") {
  const ScratchDir dir("elbo_study");
  LikelihoodSpec s;
  s.model = "ring2d";
  s.method = "elbo";
  s.prior = "exact";
  s.n = 512;
  s.timesteps = 32;
  const LikelihoodReport a = run_likelihood(s, dir.str(), true);
  REQUIRE(a.cells.size() == 1);
  const LikelihoodCell& c = a.cells[0];
  CHECK(c.key() == "elbo");
  CHECK(a.bound == "continuous");
  CHECK(c.nfe == 33);
  CHECK(std::abs(c.gap) < 4.0 * c.gap_se);
  CHECK(std::abs(c.mean_nll - (c.mean_prior + c.mean_delta + c.mean_decoder)) < 1e-10);
  const at::Tensor nll = read_npy(dir.str() + "/nll.npy");
  CHECK(std::abs(nll.mean().item<double>() - c.mean_nll) < 1e-12);
  const LikelihoodReport b = run_likelihood(s, dir.str(), false);
  CHECK(b.resumed == 1);
  CHECK(b.cells[0].mean_nll == c.mean_nll);
  CHECK(b.cells[0].gap == c.gap);

  LikelihoodSpec d = s;
  d.sde = "vp-discrete";
  d.prior = "gaussian";
  const LikelihoodReport r = run_likelihood(d, dir.str() + "/ddpm", true);
  CHECK(r.bound == "ddpm");
  CHECK(r.t_end == 0.0);
  CHECK(r.cells[0].gap > -4.0 * r.cells[0].gap_se);

  LikelihoodSpec bad = s;
  bad.bound = "ddpm";
  CHECK_THROWS_WITH(validate(bad), Catch::Contains("field 'bound'"));
  bad = d;
  bad.timesteps = 1000;
  CHECK_THROWS_WITH(validate(bad), Catch::Contains("field 'timesteps'"));
  bad = d;
  bad.decoder = "discretized";
  CHECK_THROWS_WITH(validate(bad), Catch::Contains("field 'decoder'"));
  bad = s;
  bad.decoder_std = 0.0;
  CHECK_THROWS_WITH(validate(bad), Catch::Contains("field 'decoder_std'"));
  bad = s;
  bad.method = "iwae";
  CHECK_THROWS_WITH(validate(bad), Catch::Contains("valid: ode, elbo"));
  bad = s;
  bad.reference = "npy:/nonexistent.npy";
  CHECK_THROWS_WITH(validate(bad), Catch::Contains("field 'reference'"));
}

TEST_CASE("likelihood --reference: errors against an earlier run's per-row NLL", "[elbo]") {
  const ScratchDir dir("lk_reference");
  LikelihoodSpec s;
  s.model = "ring2d";
  s.n = 64;
  s.prior = "exact";
  s.tolerances = {1e-8};
  const LikelihoodReport ref = run_likelihood(s, dir.str() + "/ref", true);
  LikelihoodSpec e = s;
  e.method = "elbo";
  e.timesteps = 16;
  e.reference = "npy:" + dir.str() + "/ref/nll.npy";
  const LikelihoodReport b = run_likelihood(e, dir.str() + "/elbo", true);
  // The ODE's NLL at 1e-8 equals the exact one to 1e-6: the gaps agree.
  LikelihoodSpec e2 = e;
  e2.reference = "";
  const LikelihoodReport c = run_likelihood(e2, dir.str() + "/elbo2", true);
  CHECK(std::abs(b.cells[0].gap - c.cells[0].gap) < 1e-6);
  CHECK(b.reference.find("nll.npy") != std::string::npos);
  // A reference of the wrong length.
  write_npy(dir.str() + "/short.npy", at::zeros({10}, at::kDouble));
  e.reference = "npy:" + dir.str() + "/short.npy";
  CHECK_THROWS_WITH(run_likelihood(e, dir.str() + "/elbo3", true), Catch::Contains("10 values"));
}
