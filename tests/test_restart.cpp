// Restart sampling (solvers/restart.cpp, docs/theory.md section 4.20): without restarts it is
// Heun in sigma~ (edm-heun without churn); its NFE; with the exact score its samples have the
// exact marginal's moments; bad intervals are refused.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "models/gaussian_mixture.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/registry.hpp"
#include "support.hpp"

using namespace sdekit;
using sdekit::test::check_moments;
using sdekit::test::GaussianCase;
using sdekit::test::make_gaussian;
using sdekit::test::run_named;

TEST_CASE("restart without restarts is Heun in sigma~, its NFE with them", "[restart]") {
  const GaussianCase gc = make_gaussian();
  for (const char* name : {"vp-linear", "edm"}) {
    const SDEPtr sde = make_sde(name);
    const SchedulePtr k = sde->schedule();
    GaussianMixtureModel model(gc.mixture(), k);
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(2);
    const at::Tensor xT = at::randn({32, 4}, g, at::kDouble) * sde->prior_std();
    const auto times =
        make_time_grid(GridKind::Karras, *k, 12, sde->domain().hi, sde->default_t_end());
    SamplerOptions o;
    o.restart_k = 0;
    const SampleResult a = run_named("restart", o, model, *sde, times, xT);
    const SampleResult b = run_named("edm-heun", {}, model, *sde, times, xT);
    INFO(name);
    CHECK((a.x - b.x).abs().max().item<double>() < 1e-12 * (1 + b.x.abs().max().item<double>()));
    CHECK(a.nfe == 24);
    o.restart_k = 3;
    o.restart_steps = 4;
    CHECK(run_named("restart", o, model, *sde, times, xT).nfe == 24 + 2 * 3 * 4);
    CHECK(make_sampler("restart", o)->steps_for_nfe(24 + 24) == 12);
  }
}

TEST_CASE("restart with the exact score samples the exact marginal's moments", "[restart]") {
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
    SamplerOptions o;
    o.restart_k = 4;
    const at::Tensor x = run_named("restart", o, model, *sde, times, xT, 7).x;
    INFO(name);
    check_moments(x, mix.mean(k->alpha(t_end)), mix.covariance(k->alpha(t_end), k->sigma(t_end)),
                  4.5, 2e-3);
  }
}

TEST_CASE("restart refuses intervals it cannot use", "[restart]") {
  SamplerOptions o;
  o.restart_tmin = 0.5;
  o.restart_tmax = 0.4;
  CHECK_THROWS_WITH(make_sampler("restart", o), Catch::Contains("restart-tmin < restart-tmax"));
  o = {};
  o.restart_tmax = 200.0;  // above EDM's sigma_max = 80
  const SDEPtr sde = make_sde("edm");
  GaussianMixtureModel model(GaussianMixture::ring2d(), sde->schedule());
  const auto times = make_time_grid(GridKind::Karras, *sde->schedule(), 10, 80.0, 0.002);
  CHECK_THROWS_WITH(run_named("restart", o, model, *sde, times, at::randn({4, 2}, at::kDouble)),
                    Catch::Contains("restart-tmax"));
  o = {};
  CHECK_THROWS_WITH(make_sampler("restart", o)->steps_for_nfe(12), Catch::Contains("restarts"));
}
