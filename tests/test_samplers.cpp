// Sampler tests: measured convergence orders against the closed-form PF-ODE flow of Gaussian
// data, moments of stochastic samplers, determinism, NFE accounting, user SDEs, bad input.
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "models/gaussian_mixture.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "schedules/vp_discrete.hpp"
#include "schedules/vp_linear.hpp"
#include "solvers/noise.hpp"
#include "solvers/registry.hpp"
#include "solvers/sample.hpp"
#include "support.hpp"

using namespace sdekit;
using sdekit::test::check_moments;
using sdekit::test::fitted_order;
using sdekit::test::GaussianCase;
using sdekit::test::make_gaussian;
using sdekit::test::rms;

namespace {

SampleResult run(const Sampler& s, ScoreModel& m, const SDE& sde, const std::vector<double>& times,
                 const at::Tensor& x, uint64_t seed = 1, const StepObserver& obs = {}) {
  SampleRequest r;
  r.model = &m;
  r.sde = &sde;
  r.times = times;
  r.x_init = x;
  r.generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return s.run(r, obs);
}

}  // namespace

TEST_CASE("deterministic samplers reach their declared order on the Gaussian PF-ODE flow",
          "[samplers][order]") {
  const GaussianCase gc = make_gaussian();
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
  const at::Tensor xT = at::randn({64, 4}, g, at::kDouble);
  for (const char* sde_name : {"vp-linear", "vp-cosine", "sub-vp", "ve", "edm"}) {
    const SDEPtr sde = make_sde(sde_name);
    const SchedulePtr k = sde->schedule();
    const double T = sde->domain().hi, t_end = sde->default_t_end();
    GaussianMixtureModel model(gc.mixture(), k);
    const at::Tensor exact = gc.flow(xT, *k, T, t_end);
    // Grids where the problem is smooth in the step variable: uniform-lambda for VE/EDM (whose
    // sigma spans four decades), uniform-t elsewhere.
    const GridKind grid = (std::string(sde_name) == "ve" || std::string(sde_name) == "edm")
                              ? GridKind::UniformLambda
                              : GridKind::UniformT;
    // The black-box ODE samplers and DDIM; the exponential integrators are measured in
    // test_dpm_solver.cpp on grids uniform in lambda.
    for (const char* name : {"euler", "heun", "rk4", "ddim"}) {
      const auto sampler = make_sampler(name);
      std::vector<double> nfe, err;
      for (int steps : {32, 48, 64, 96, 128}) {
        const auto times = make_time_grid(grid, *k, steps, T, t_end);
        const SampleResult res = run(*sampler, model, *sde, times, xT);
        nfe.push_back(static_cast<double>(res.nfe));
        err.push_back(rms(res.x - exact));
      }
      const double p = fitted_order(nfe, err);
      INFO(sde_name << " " << name << ": fitted order " << p << ", errors " << err.front() << " .. "
                    << err.back());
      CHECK(std::abs(p - sampler->order()) < 0.15);
    }
  }
}

TEST_CASE("stochastic samplers reproduce the mixture's marginal moments", "[samplers][moments]") {
  // ring2d, n = 10000 from one prior draw, 200 steps: the discretisation bias (O(h) = O(5e-3)
  // weak error) is below the sampling error (SE of a mean coordinate ~ 0.014). Tolerance: 4.5 SE
  // per entry (a chance of about 1 in 150000 for one Gaussian entry; 5 entries per sampler) plus
  // 0.01 for the bias.
  const GaussianMixture mix = GaussianMixture::ring2d();
  for (const char* sde_name : {"vp-linear", "ve"}) {
    const SDEPtr sde = make_sde(sde_name);
    const SchedulePtr k = sde->schedule();
    GaussianMixtureModel model(mix, k);
    const double T = sde->domain().hi, t_end = sde->default_t_end();
    const auto times = make_time_grid(GridKind::UniformT, *k, 200, T, t_end);
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(11);
    const at::Tensor xT = draw_prior(*sde, {10000, 2}, g, at::kDouble);
    const at::Tensor m = mix.mean(k->alpha(t_end)),
                     C = mix.covariance(k->alpha(t_end), k->sigma(t_end));
    // The first-order stochastic samplers (Langevin-type and higher-order ones have their own
    // moment tests in test_adaptive.cpp and test_stochastic.cpp).
    for (const char* name : {"euler-maruyama", "ancestral", "ddim", "sde-dpmpp-2m"}) {
      SamplerOptions opt;
      opt.eta = 1.0;  // DDIM with noise
      const auto sampler = make_sampler(name, opt);
      INFO(sde_name << " " << name);
      const SampleResult res = run(*sampler, model, *sde, times, xT, 5);
      check_moments(res.x, m, C, 4.5, 0.01);
    }
  }
}

TEST_CASE("transition-variance ancestral sampling also reproduces the moments",
          "[samplers][moments]") {
  const GaussianMixture mix = GaussianMixture::ring2d();
  const SDEPtr sde = make_sde("vp-discrete");
  const SchedulePtr k = sde->schedule();
  GaussianMixtureModel model(mix, k);
  const double t_end = sde->default_t_end();
  const auto times = make_time_grid(GridKind::DdpmUniform, *k, 200, 1.0, t_end);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(12);
  const at::Tensor xT = draw_prior(*sde, {10000, 2}, g, at::kDouble);
  SamplerOptions opt;
  opt.variance = AncestralVariance::Transition;
  const SampleResult res = run(*make_sampler("ancestral", opt), model, *sde, times, xT, 6);
  check_moments(res.x, mix.mean(k->alpha(t_end)), mix.covariance(k->alpha(t_end), k->sigma(t_end)),
                4.5, 0.01);
}

TEST_CASE("ancestral sampling on consecutive vp-discrete steps is docs/theory.md's DDPM update",
          "[samplers]") {
  // x_{n-1} = (x_n - beta_n / sqrt(1 - abar_n) eps) / sqrt(1 - beta_n) + sigma_n z with
  // sigma_n^2 = beta-tilde_n = (1 - abar_{n-1}) / (1 - abar_n) beta_n, written out here.
  const auto disc = std::make_shared<VPDiscrete>(VPDiscrete::linear());
  const AffineSDE sde(disc);
  const GaussianMixture mix = GaussianMixture::ring2d();
  GaussianMixtureModel model(mix, disc, Param::Eps);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(1);
  const at::Tensor x = at::randn({8, 2}, g, at::kDouble);
  for (int n : {1000, 500, 20, 2}) {
    const double s = n / 1000.0, t = (n - 1) / 1000.0;
    const SampleResult res = run(*make_sampler("ancestral"), model, sde, {s, t, t / 2.0}, x, 9, {});
    // Recompute the first step by hand with the same noise: the run's first draw from seed 9.
    at::Generator g2 = at::make_generator<at::CPUGeneratorImpl>(9);
    const at::Tensor z = at::randn({8, 2}, g2, at::kDouble);
    const double b = disc->beta(n), ab = disc->alpha_bar(n), ab1 = disc->alpha_bar(n - 1);
    const at::Tensor eps = model.predict_at(x, s);
    const at::Tensor expected = (x - b / std::sqrt(1 - ab) * eps) / std::sqrt(1 - b) +
                                std::sqrt((1 - ab1) / (1 - ab) * b) * z;
    // Only the first step is compared: observe it.
    at::Tensor first;
    run(*make_sampler("ancestral"), model, sde, {s, t, t / 2.0}, x, 9, [&](const StepInfo& info) {
      if (info.index == 0) first = info.x.clone();
    });
    INFO("n = " << n);
    CHECK(at::allclose(first, expected, 1e-12, 1e-12));
    CHECK(res.nfe == 2);
  }
}

TEST_CASE("DDIM with eta = 1 equals posterior ancestral sampling on the same noise", "[samplers]") {
  const SDEPtr sde = make_sde("vp-discrete");
  const SchedulePtr k = sde->schedule();
  GaussianMixtureModel model(GaussianMixture::ring2d(), k);
  const auto times = make_time_grid(GridKind::DdpmQuadratic, *k, 25, 1.0, sde->default_t_end());
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(2);
  const at::Tensor xT = at::randn({256, 2}, g, at::kDouble);
  SamplerOptions o;
  o.eta = 1.0;
  const SampleResult a = run(*make_sampler("ddim", o), model, *sde, times, xT, 4);
  const SampleResult b = run(*make_sampler("ancestral"), model, *sde, times, xT, 4);
  INFO("max diff " << (a.x - b.x).abs().max().item<double>());
  CHECK(at::allclose(a.x, b.x, 1e-10, 1e-10));
}

TEST_CASE("same seed gives the same bits and another seed other samples",
          "[samplers][determinism]") {
  const SDEPtr sde = make_sde("vp-linear");
  GaussianMixtureModel model(GaussianMixture::ring2d(), sde->schedule());
  const auto times = make_time_grid(GridKind::UniformT, *sde->schedule(), 20, 1.0, 1e-3);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(0);
  const at::Tensor xT = at::randn({100, 2}, g, at::kFloat);
  for (const char* name : {"euler-maruyama", "ancestral"}) {
    const auto s = make_sampler(name);
    const SampleResult a = run(*s, model, *sde, times, xT, 42),
                       b = run(*s, model, *sde, times, xT, 42);
    const SampleResult c = run(*s, model, *sde, times, xT, 43);
    INFO(name);
    CHECK(at::equal(a.x, b.x));
    CHECK_FALSE(at::allclose(a.x, c.x));
  }
}

TEST_CASE("NFE is counted at the model and the observer sees every step", "[samplers]") {
  const SDEPtr sde = make_sde("vp-linear");
  GaussianMixtureModel model(GaussianMixture::ring2d(), sde->schedule());
  const auto times = make_time_grid(GridKind::UniformT, *sde->schedule(), 7, 1.0, 1e-3);
  const at::Tensor xT = at::zeros({3, 2}, at::kDouble) + 0.3;
  const std::vector<std::pair<const char*, int>> expect = {{"euler", 7},     {"heun", 14},
                                                           {"rk4", 28},      {"ddim", 7},
                                                           {"ancestral", 7}, {"euler-maruyama", 7}};
  for (const auto& [name, nfe] : expect) {
    const auto s = make_sampler(name);
    std::vector<int> idx;
    std::vector<int64_t> seen;
    const SampleResult r = run(*s, model, *sde, times, xT, 1, [&](const StepInfo& info) {
      idx.push_back(info.index);
      seen.push_back(info.nfe);
      CHECK(info.t_from == times[static_cast<size_t>(info.index)]);
      CHECK(info.t_to == times[static_cast<size_t>(info.index) + 1]);
    });
    INFO(name);
    CHECK(r.nfe == nfe);
    CHECK(r.nfe == s->nfe_per_step() * 7);
    REQUIRE(idx.size() == 7);
    for (int i = 0; i < 7; ++i) CHECK(idx[static_cast<size_t>(i)] == i);
    CHECK(seen.back() == nfe);
  }
}

TEST_CASE("a user SDE from callbacks samples exactly like the built-in VP-linear",
          "[samplers][user-sde]") {
  const auto vp = std::make_shared<VPLinear>();
  const AffineSDE builtin(vp);
  CallbackSDE::Spec spec;
  spec.name = "my-vp";
  auto beta = [](double t) { return 0.1 + t * (20.0 - 0.1); };
  auto log_alpha = [](double t) { return -0.25 * t * t * (20.0 - 0.1) - 0.5 * t * 0.1; };
  spec.drift = [beta](const at::Tensor& x, double t) { return -0.5 * beta(t) * x; };
  spec.diffusion = [beta](double t) { return std::sqrt(beta(t)); };
  spec.alpha = [log_alpha](double t) { return std::exp(log_alpha(t)); };
  spec.sigma = [log_alpha](double t) { return std::sqrt(-std::expm1(2.0 * log_alpha(t))); };
  const CallbackSDE user(spec);
  const GaussianMixture mix = GaussianMixture::ring2d();
  GaussianMixtureModel m_builtin(mix, vp), m_user(mix, user.schedule());
  const auto times = make_time_grid(GridKind::UniformT, *vp, 30, 1.0, 1e-3);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor xT = at::randn({50, 2}, g, at::kDouble);
  for (const char* name : {"euler", "heun", "euler-maruyama", "ddim", "ancestral"}) {
    const auto s = make_sampler(name);
    const SampleResult a = run(*s, m_builtin, builtin, times, xT, 8),
                       b = run(*s, m_user, user, times, xT, 8);
    INFO(name << ": max diff " << (a.x - b.x).abs().max().item<double>());
    CHECK(at::allclose(a.x, b.x, 1e-12, 1e-12));
  }
}

TEST_CASE("a score-only user SDE without a Gaussian kernel still samples with ODE and EM samplers",
          "[samplers][user-sde]") {
  // Ornstein-Uhlenbeck-free pure diffusion dx = g dw with g = 1 and data N(0, 1): p_t = N(0, 1 +
  // t).
  struct ExactScore final : ScoreModel {
    Param param() const override { return Param::Score; }
    at::Tensor predict(const at::Tensor& x, const at::Tensor& t) override {
      return -x / (1.0 + t.unsqueeze(1));
    }
    at::Tensor predict_at(const at::Tensor& x, double t) override { return -x / (1.0 + t); }
  } model;
  CallbackSDE::Spec spec;
  spec.drift = [](const at::Tensor& x, double) { return at::zeros_like(x); };
  spec.diffusion = [](double) { return 1.0; };
  spec.prior_std = std::sqrt(2.0);
  const CallbackSDE sde(spec);
  CHECK(sde.schedule() == nullptr);
  std::vector<double> times;
  for (int i = 0; i <= 20; ++i) times.push_back(1.0 - i * (1.0 - 1e-3) / 20);
  const at::Tensor xT = at::full({4, 1}, 1.4, at::kDouble);
  // PF-ODE: x_t = x_T sqrt((1 + t) / (1 + T)).
  const SampleResult r = run(*make_sampler("rk4"), model, sde, times, xT);
  INFO("max diff " << (r.x - xT * std::sqrt((1.0 + 1e-3) / 2.0)).abs().max().item<double>());
  CHECK(at::allclose(r.x, xT * std::sqrt((1.0 + 1e-3) / 2.0), 1e-7, 1e-7));  // RK4, 20 steps
  CHECK_NOTHROW(run(*make_sampler("euler-maruyama"), model, sde, times, xT));
  CHECK_THROWS_WITH(run(*make_sampler("ddim"), model, sde, times, xT),
                    Catch::Contains("Gaussian kernel"));
}

TEST_CASE("sample() with --rng generator draws x_T from the prior with the seed, then the noise",
          "[samplers][sample]") {
  const SDEPtr sde = make_sde("ve");
  GaussianMixtureModel model(GaussianMixture::ring2d(), sde->schedule());
  SampleSpec spec;
  spec.steps = 12;
  spec.n = 64;
  spec.event_shape = {2};
  spec.seed = 17;
  spec.rng = RngKind::Generator;
  spec.options = at::kDouble;
  const auto em = make_sampler("euler-maruyama");
  const SampleResult a = sample(*em, model, *sde, spec);
  // By hand: one generator, prior draw first (std sqrt(1 + 50^2) for VE), then the run.
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(17);
  const at::Tensor xT = at::randn({64, 2}, g, at::kDouble) * std::sqrt(1.0 + 50.0 * 50.0);
  SampleRequest req;
  req.model = &model;
  req.sde = sde.get();
  req.times = make_time_grid(GridKind::UniformT, *sde->schedule(), 12, 1.0, 1e-5);
  req.x_init = xT;
  req.generator = g;
  const SampleResult b = em->run(req);
  CHECK(at::allclose(a.x, b.x, 1e-12, 1e-12));
  CHECK(a.nfe == 12);
}

TEST_CASE("bad input: sample() and run() name the bad field", "[samplers][errors]") {
  const SDEPtr sde = make_sde("vp-linear");
  GaussianMixtureModel model(GaussianMixture::ring2d(), sde->schedule());
  const auto heun = make_sampler("heun");
  SampleSpec spec;
  spec.event_shape = {2};
  spec.steps = 0;
  CHECK_THROWS_WITH(sample(*heun, model, *sde, spec), Catch::Contains("steps must be >= 1, got 0"));
  spec.steps = 5;
  spec.t_end = 1.0;
  CHECK_THROWS_WITH(sample(*heun, model, *sde, spec), Catch::Contains("t_end must lie in (0, 1)"));
  spec.t_end = -1;
  spec.event_shape.clear();
  CHECK_THROWS_WITH(sample(*heun, model, *sde, spec), Catch::Contains("event_shape"));

  SampleRequest req;
  req.model = &model;
  req.sde = sde.get();
  req.times = {1.0, 0.5, 0.7};
  req.x_init = at::zeros({2, 2});
  CHECK_THROWS_WITH(heun->run(req), Catch::Contains("strictly decreasing"));
  req.times = {1.0, 0.0};
  CHECK_THROWS_WITH(heun->run(req), Catch::Contains("times[1] = 0"));
  req.times = {1.0};
  CHECK_THROWS_WITH(heun->run(req), Catch::Contains("at least 2"));
  req.times = {1.0, 0.5};
  req.x_init = at::Tensor();
  CHECK_THROWS_WITH(heun->run(req), Catch::Contains("x_init"));
  req.x_init = at::zeros({2, 2}, at::kLong);
  CHECK_THROWS_WITH(heun->run(req), Catch::Contains("floating point"));
  req.x_init = at::zeros({2, 2});
  CHECK_THROWS_WITH(make_sampler("euler-maruyama")->run(req),
                    Catch::Contains("needs request.generator or request.brownian"));
  req.model = nullptr;
  CHECK_THROWS_WITH(heun->run(req), Catch::Contains("request.model is null"));
  CHECK_THROWS_WITH(make_sampler("rk45"),
                    Catch::Contains("unknown sampler 'rk45'") && Catch::Contains("rk4"));
  SamplerOptions bad;
  bad.eta = -1;
  CHECK_THROWS_WITH(make_sampler("ddim", bad), Catch::Contains("eta must be >= 0"));
}

TEST_CASE("a blow-up mid-run reports the step and t instead of returning NaN",
          "[samplers][errors]") {
  // A model that returns NaN from t = 0.5 on: step 2 (0.5 -> 0.25) is the first to see it.
  struct Faulty final : ScoreModel {
    Param param() const override { return Param::Score; }
    at::Tensor predict(const at::Tensor& x, const at::Tensor&) override { return x; }
    at::Tensor predict_at(const at::Tensor& x, double t) override {
      return t <= 0.5 ? at::full_like(x, std::nan("")) : -x;
    }
  } model;
  const SDEPtr sde = make_sde("vp-linear");
  SampleRequest req;
  req.model = &model;
  req.sde = sde.get();
  req.times = {1.0, 0.75, 0.5, 0.25, 0.1};
  req.x_init = at::ones({3, 2}, at::kDouble);
  CHECK_THROWS_WITH(make_sampler("euler")->run(req), Catch::Contains("non-finite") &&
                                                         Catch::Contains("step 2") &&
                                                         Catch::Contains("t = 0.5"));
  bool caught = false;
  try {
    make_sampler("euler")->run(req);
  } catch (const NonFiniteError& e) {
    caught = true;
    CHECK(e.step == 2);
    CHECK(e.t_from == 0.5);
    // The state after step 1 survives: finite, and what a two-step run returns.
    SampleRequest two = req;
    two.times = {1.0, 0.75, 0.5};
    CHECK(at::equal(e.last_finite, make_sampler("euler")->run(two).x));
  }
  CHECK(caught);
  req.finite_check = FiniteCheck::Final;
  CHECK_THROWS_WITH(make_sampler("euler")->run(req),
                    Catch::Contains("non-finite") && Catch::Contains("end of the run"));
}
