// ER-SDE-Solver and SA-Solver (solvers/er_sde.cpp, solvers/sa_solver.cpp; docs/theory.md sections
// 4.21 and 4.22): their limits are the samplers they generalize (DDIM, Euler ancestral,
// DPM-Solver++ 2M SDE), ER-SDE's stages match a loop written from the published form, SA-Solver's
// weights integrate polynomials exactly, their deterministic forms reach their orders on the
// closed-form Gaussian PF-ODE flow, their stochastic forms sample the exact marginal's moments,
// and bad options are refused.
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "models/gaussian_mixture.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/registry.hpp"
#include "solvers/samplers.hpp"
#include "support.hpp"

using namespace sdekit;
using sdekit::test::check_moments;
using sdekit::test::fitted_order;
using sdekit::test::GaussianCase;
using sdekit::test::make_gaussian;
using sdekit::test::rms;
using sdekit::test::run_named;

namespace {

double max_rel(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / (1.0 + b.abs().max().item<double>());
}
}  // namespace

TEST_CASE("er-sde: phi = u is DDIM, phi = u^2 is Euler ancestral (eta 1), stage 1", "[er-sde]") {
  const GaussianCase gc = make_gaussian();
  for (const char* name : {"vp-linear", "edm"}) {
    const SDEPtr sde = make_sde(name);
    const SchedulePtr k = sde->schedule();
    GaussianMixtureModel model(gc.mixture(), k);
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(4);
    const at::Tensor xT = at::randn({32, 4}, g, at::kDouble) * sde->prior_std();
    const auto times =
        make_time_grid(GridKind::Karras, *k, 15, sde->domain().hi, sde->default_t_end());
    INFO(name);
    SamplerOptions o;
    o.er_sde_stages = 1;
    o.er_sde_noise = ErSdeNoise::Ode;
    CHECK(max_rel(run_named("er-sde", o, model, *sde, times, xT).x,
                  run_named("ddim", {}, model, *sde, times, xT).x) < 1e-12);
    o.er_sde_noise = ErSdeNoise::Sde;
    SamplerOptions ea;
    ea.ancestral_eta = 1.0;
    CHECK(max_rel(run_named("er-sde", o, model, *sde, times, xT, 9).x,
                  run_named("euler-ancestral", ea, model, *sde, times, xT, 9).x) < 1e-12);
    CHECK(make_sampler("er-sde", o)->uses_brownian_path());
    CHECK_FALSE(make_sampler("er-sde")->uses_brownian_path());
  }
}

TEST_CASE("er-sde: three stages as written from the published form (Riemann sums of 200 points)",
          "[er-sde]") {
  // EDM (alpha = 1, sigma~ = t), no noise (s_noise = 0), ER-SDE 5's phi: for i = 0, 1, 2, ...
  //   x = r x + (1 - r) D                                      r = phi(s_t) / phi(s_s)
  //   + (ds + phi(s_t) S1) D'      (i >= 1)   S1 = sum_k du / phi(s_t + k du), du = (s_s - s_t)/200
  //   + (ds^2/2 + phi(s_t) S2) D'' (i >= 2)   S2 = sum_k du (s_t + k du - s_s) / phi(...)
  const GaussianCase gc = make_gaussian();
  const SDEPtr sde = make_sde("edm");
  const SchedulePtr k = sde->schedule();
  GaussianMixtureModel model(gc.mixture(), k, Param::X0);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(6);
  const at::Tensor xT = at::randn({16, 4}, g, at::kDouble) * 80.0;
  const std::vector<double> sig = {80.0, 30.0, 9.0, 2.5, 0.7, 0.15, 0.02};
  SamplerOptions o;
  o.s_noise = 0.0;
  o.er_sde_points = 200;
  const at::Tensor got = run_named("er-sde", o, model, *sde, sig, xT).x;
  auto phi = [](double u) { return u * (std::exp(std::pow(u, 0.3)) + 10.0); };
  at::Tensor x = xT.clone(), D1, d1_old;
  for (size_t i = 0; i + 1 < sig.size(); ++i) {
    const double ss = sig[i], st = sig[i + 1], ds = st - ss;
    const at::Tensor D = model.predict_at(x, ss);
    const double r = phi(st) / phi(ss);
    at::Tensor nx = r * x + (1 - r) * D;
    at::Tensor d1;
    if (i >= 1) {
      double S1 = 0, S2 = 0;
      const double du = (ss - st) / 200;
      for (int q = 0; q < 200; ++q) {
        const double u = st + q * du;
        S1 += du / phi(u);
        S2 += du * (u - ss) / phi(u);
      }
      d1 = (D - D1) / (ss - sig[i - 1]);
      nx = nx + (ds + phi(st) * S1) * d1;
      if (i >= 2) {
        const at::Tensor d2 = (d1 - d1_old) / ((ss - sig[i - 2]) / 2);
        nx = nx + (ds * ds / 2 + phi(st) * S2) * d2;
      }
    }
    x = nx;
    D1 = D;
    d1_old = d1;
  }
  CHECK(max_rel(got, x) < 1e-12);
  // The exact integrals are what the Riemann sums converge to, at their first order.
  SamplerOptions exact = o;
  exact.er_sde_points = 0;
  const at::Tensor ref = run_named("er-sde", exact, model, *sde, sig, xT).x;
  std::vector<double> e;
  for (int n : {200, 400, 800}) {
    o.er_sde_points = n;
    e.push_back(rms(run_named("er-sde", o, model, *sde, sig, xT).x - ref));
  }
  INFO("Riemann-sum errors " << e[0] << " " << e[1] << " " << e[2]);
  CHECK(e[0] / e[1] == Approx(2.0).epsilon(0.1));
  CHECK(e[1] / e[2] == Approx(2.0).epsilon(0.1));
}

TEST_CASE("sa-solver weights integrate polynomials exactly against the exponential weight",
          "[sa-solver]") {
  // I_k = int_{ls}^{lt} c e^{-c (lt - l)} (l - lt)^k dl by the recurrence
  // I_k = -(-h)^k e^{-c h} - (k / c) I_{k-1}, I_0 = 1 - e^{-c h}.
  const double ls = -0.4, lt = 0.35, h = lt - ls;
  const std::array<double, 5> nodes = {-0.4, -0.9, -1.3, -1.85, 0.35};
  for (double c : {1.0, 1.5, 3.0}) {
    std::vector<double> I(5);
    I[0] = -std::expm1(-c * h);
    for (int kk = 1; kk < 5; ++kk)
      I[size_t(kk)] = -std::pow(-h, kk) * std::exp(-c * h) - (kk / c) * I[size_t(kk) - 1];
    for (int n = 1; n <= 5; ++n) {
      const auto w = sa_solver_weights(nodes, n, ls, lt, c);
      for (int kk = 0; kk < n; ++kk) {
        double sum = 0;
        for (int j = 0; j < n; ++j) sum += w[size_t(j)] * std::pow(nodes[size_t(j)] - lt, kk);
        INFO("c = " << c << " n = " << n << " k = " << kk);
        CHECK(sum == Approx(I[size_t(kk)]).epsilon(1e-12).margin(1e-14));
      }
    }
  }
}

TEST_CASE("sa-solver: order 1 is DPM-Solver++ 1, order 2 without corrector is 2M SDE (Heun)",
          "[sa-solver]") {
  const GaussianCase gc = make_gaussian();
  for (const char* name : {"vp-linear", "edm"}) {
    const SDEPtr sde = make_sde(name);
    const SchedulePtr k = sde->schedule();
    GaussianMixtureModel model(gc.mixture(), k);
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
    const at::Tensor xT = at::randn({32, 4}, g, at::kDouble) * sde->prior_std();
    const auto times =
        make_time_grid(GridKind::UniformLambda, *k, 12, sde->domain().hi, sde->default_t_end());
    INFO(name);
    SamplerOptions o;
    o.sa_predictor_order = 1;
    o.sa_corrector_order = 0;
    o.sa_tau = 0.0;
    CHECK(max_rel(run_named("sa-solver", o, model, *sde, times, xT).x,
                  run_named("dpmpp-1", {}, model, *sde, times, xT).x) < 1e-12);
    // tau^2 = eta: the same exponential weights and the same noise.
    for (double eta : {0.0, 0.5, 1.0}) {
      o.sa_predictor_order = 2;
      o.sa_tau = std::sqrt(eta);
      o.lower_order_final = LowerOrderFinal::Off;
      SamplerOptions m;
      m.ancestral_eta = eta;
      m.sde_solver_heun = true;
      INFO("eta = " << eta);
      CHECK(max_rel(run_named("sa-solver", o, model, *sde, times, xT, 3).x,
                    run_named("dpmpp-2m-sde", m, model, *sde, times, xT, 3).x) < 1e-12);
    }
    // The corrector spends no extra call: NFE = steps.
    CHECK(run_named("sa-solver", {}, model, *sde, times, xT).nfe == 12);
  }
}

TEST_CASE("er-sde and sa-solver reach their declared orders on the Gaussian PF-ODE flow",
          "[er-sde][sa-solver][order]") {
  const GaussianCase gc = make_gaussian();
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
  const at::Tensor x1 = at::randn({64, 4}, g, at::kDouble);
  struct Case {
    const char* name;
    SamplerOptions o;
    std::vector<int> steps;
  };
  auto er = [](int stages) {
    SamplerOptions o;
    o.er_sde_noise = ErSdeNoise::Ode;
    o.er_sde_stages = stages;
    return o;
  };
  auto sa = [](int p, int q) {
    SamplerOptions o;
    o.sa_tau = 0.0;
    o.sa_predictor_order = p;
    o.sa_corrector_order = q;
    return o;
  };
  const std::vector<int> n = {64, 96, 128, 192, 256};
  const std::vector<Case> cases = {
      {"er-sde", er(1), n},       {"er-sde", er(2), n},       {"er-sde", er(3), n},
      {"sa-solver", sa(1, 0), n}, {"sa-solver", sa(2, 0), n}, {"sa-solver", sa(3, 0), n},
      {"sa-solver", sa(1, 2), n}, {"sa-solver", sa(2, 3), n}, {"sa-solver", sa(3, 4), n}};
  // Ends well inside the data side's transition (lambda about 1.7 on vp-linear): over the whole
  // range a single Gaussian's x0(lambda) is flat at both ends and the integral of its third
  // derivative nearly vanishes, which hides the third-order error term behind the fourth.
  for (const char* sde_name : {"vp-linear", "edm"}) {
    const SDEPtr sde = make_sde(sde_name);
    const SchedulePtr k = sde->schedule();
    const double T = sde->domain().hi, t_end = sde_name == std::string("edm") ? 0.18 : 0.05;
    GaussianMixtureModel model(gc.mixture(), k);
    const at::Tensor xT = x1 * sde->prior_std();
    const at::Tensor exact = gc.flow(xT, *k, T, t_end);
    for (const auto& c : cases) {
      const auto sampler = make_sampler(c.name, c.o);
      REQUIRE_FALSE(sampler->stochastic());
      std::vector<double> nfe, err;
      for (int n : c.steps) {
        SampleRequest r;
        r.model = &model;
        r.sde = sde.get();
        r.times = make_time_grid(GridKind::UniformLambda, *k, n, T, t_end);
        r.x_init = xT;
        const SampleResult res = sampler->run(r);
        nfe.push_back(double(res.nfe));
        err.push_back(rms(res.x - exact));
      }
      const double p = fitted_order(nfe, err);
      const std::string what = c.name == std::string("er-sde")
                                   ? "stages " + std::to_string(c.o.er_sde_stages)
                                   : "orders " + std::to_string(c.o.sa_predictor_order) + "/" +
                                         std::to_string(c.o.sa_corrector_order);
      INFO(sde_name << " " << c.name << " (" << what << "): fitted order " << p << ", declared "
                    << sampler->order() << ", errors " << err.front() << " .. " << err.back());
      CHECK(std::abs(p - sampler->order()) < 0.2);
    }
  }
}

TEST_CASE("er-sde and sa-solver with noise sample the exact marginal's moments",
          "[er-sde][sa-solver]") {
  const GaussianCase gc = make_gaussian();
  const GaussianMixture mix = gc.mixture();
  for (const char* name : {"vp-linear", "edm"}) {
    const SDEPtr sde = make_sde(name);
    const SchedulePtr k = sde->schedule();
    GaussianMixtureModel model(mix, k);
    const double t_end = sde->default_t_end();
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
    const at::Tensor xT = at::randn({20000, 4}, g, at::kDouble) * sde->prior_std();
    const auto times = make_time_grid(GridKind::Karras, *k, 30, sde->domain().hi, t_end);
    for (const char* s : {"er-sde", "sa-solver"}) {
      REQUIRE(make_sampler(s)->stochastic());
      const at::Tensor x = run_named(s, {}, model, *sde, times, xT, 7).x;
      INFO(name << " " << s);
      check_moments(x, mix.mean(k->alpha(t_end)), mix.covariance(k->alpha(t_end), k->sigma(t_end)),
                    4.5, 2e-3);
    }
  }
}

TEST_CASE("er-sde and sa-solver refuse options they cannot use", "[er-sde][sa-solver]") {
  using Catch::Contains;
  CHECK_THROWS_WITH(sampler_options_for("er-sde", {{"er-sde-stages", "4"}}), Contains("at most 3"));
  CHECK_THROWS_WITH(sampler_options_for("er-sde", {{"er-sde-noise", "ve"}}),
                    Contains("er5, ode or sde"));
  CHECK_THROWS_WITH(sampler_options_for("sa-solver", {{"sa-corrector-order", "5"}}),
                    Contains("at most 4"));
  CHECK_THROWS_WITH(sampler_options_for("sa-solver", {{"sa-tau", "-1"}}), Contains(">= 0"));
  SamplerOptions o;
  o.sa_tau_min = 2.0;
  o.sa_tau_max = 1.0;
  CHECK_THROWS_WITH(make_sampler("sa-solver", o), Contains("sa-tau-min <= --sa-tau-max"));
  CHECK_THROWS_WITH(sampler_options_for("ddim", {{"sa-tau", "1"}}), Contains("does not apply"));
  const SamplerOptions parsed =
      sampler_options_for("sa-solver", {{"sa-tau-max", "inf"}, {"sa-predictor-order", "2"}});
  CHECK(std::isinf(parsed.sa_tau_max));
  CHECK(parsed.sa_predictor_order == 2);
  CHECK(make_sampler("sa-solver")->uses_brownian_path());
  o = {};
  o.sa_tau = 0.5;
  CHECK_FALSE(make_sampler("sa-solver", o)->uses_brownian_path());
}

TEST_CASE("a sampler name carries options: NAME:OPTION=VALUE", "[er-sde][sa-solver][registry]") {
  using Catch::Contains;
  const GaussianCase gc = make_gaussian();
  const SDEPtr sde = make_sde("vp-linear");
  GaussianMixtureModel model(gc.mixture(), sde->schedule());
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(2);
  const at::Tensor xT = at::randn({8, 4}, g, at::kDouble);
  const auto times = make_time_grid(GridKind::UniformLambda, *sde->schedule(), 10, 1.0, 1e-3);
  SamplerOptions o;
  o.er_sde_noise = ErSdeNoise::Ode;
  o.er_sde_stages = 2;
  SampleRequest r;
  r.model = &model;
  r.sde = sde.get();
  r.times = times;
  r.x_init = xT;
  const at::Tensor named = make_sampler("er-sde:er-sde-noise=ode:er-sde-stages=2")->run(r).x;
  CHECK(at::equal(named, make_sampler("er-sde", o)->run(r).x));
  CHECK_FALSE(make_sampler("er-sde:er-sde-noise=ode")->stochastic());
  CHECK(make_sampler("er-sde:er-sde-noise=sde")->uses_brownian_path());
  CHECK(sampler_info("sa-solver:sa-tau=0").name == "sa-solver");
  // The name's options win over the given ones.
  CHECK(sampler_options_for("sa-solver:sa-tau=0", {{"sa-tau", "1"}}).sa_tau == 0.0);
  CHECK_THROWS_WITH(make_sampler("er-sde:stages"), Contains("NAME:OPTION=VALUE"));
  CHECK_THROWS_WITH(make_sampler("er-sde:eta=1"), Contains("does not apply to --sampler er-sde"));
  CHECK_THROWS_WITH(make_sampler("er-sde:er-sde-stages=2:er-sde-stages=3"),
                    Contains("given twice"));
  CHECK_THROWS_WITH(make_sampler("nope:eta=1"), Contains("unknown sampler 'nope'"));
  CHECK_THROWS_WITH(make_sampler("er-sde:er-sde-stages=9"), Contains("at most 3"));
}
