// The samplers written in sigma~ = sigma / alpha (docs/theory.md section 4.15): their identities
// with the lambda-space samplers where the formulas coincide, their orders on the closed-form
// Gaussian PF-ODE flow, the marginal moments of the stochastic ones, and their strong order on a
// shared Brownian path.
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "models/gaussian_mixture.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/brownian_tree.hpp"
#include "solvers/noise.hpp"
#include "solvers/registry.hpp"
#include "support.hpp"

using namespace sdekit;
using sdekit::test::check_moments;
using sdekit::test::fitted_order;
using sdekit::test::GaussianCase;
using sdekit::test::make_gaussian;
using sdekit::test::rms;

namespace {

SampleResult run(const std::string& name, const SamplerOptions& o, ScoreModel& m, const SDE& sde,
                 const std::vector<double>& times, const at::Tensor& x, uint64_t seed = 1,
                 BrownianPtr path = nullptr) {
  SampleRequest r;
  r.model = &m;
  r.sde = &sde;
  r.times = times;
  r.x_init = x;
  if (path)
    r.brownian = std::move(path);
  else
    r.generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return make_sampler(name, o)->run(r);
}

SamplerOptions eta(double v) {
  SamplerOptions o;
  o.ancestral_eta = v;
  return o;
}

double max_rel_diff(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

}  // namespace

TEST_CASE("sigma-space samplers equal the lambda-space ones where the formulas coincide",
          "[kdiffusion]") {
  // Euler in sigma~ is DDIM (eta 0); the ancestral step with eta = 1 is DDPM's posterior step;
  // DPM-Solver++ 2S is dpmpp-2s-ancestral and dpmpp-sde (r = 1/2) without noise; 2M SDE without
  // noise is DPM-Solver++ 2M on a 20-step grid, where 2M does not lower the order of its final
  // steps; lms of order 1 is Euler in sigma~.
  const GaussianMixture mix = GaussianMixture::ring2d();
  for (const char* sde_name : {"vp-linear", "ve", "edm"}) {
    const SDEPtr sde = make_sde(sde_name);
    const SchedulePtr k = sde->schedule();
    GaussianMixtureModel model(mix, k);
    const double T = sde->domain().hi, t_end = sde->default_t_end();
    const auto times = make_time_grid(GridKind::UniformLambda, *k, 20, T, t_end);
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(4);
    const at::Tensor xT = draw_prior(*sde, {64, 2}, g, at::kDouble);
    INFO(sde_name);
    const at::Tensor ddim = run("ddim", {}, model, *sde, times, xT).x;
    CHECK(max_rel_diff(run("euler-ancestral", eta(0), model, *sde, times, xT).x, ddim) < 1e-12);
    SamplerOptions lms1;
    lms1.lms_order = 1;
    CHECK(max_rel_diff(run("lms", lms1, model, *sde, times, xT).x, ddim) < 1e-12);
    {
      // DDPM's ancestral sampler adds no noise on its last step; k-diffusion's adds it on every
      // step that does not end at sigma = 0. The states before the last step agree.
      auto before_last = [&](const std::string& name, SamplerOptions o) {
        SampleRequest r;
        r.model = &model;
        r.sde = sde.get();
        r.times = times;
        r.x_init = xT;
        r.generator = at::make_generator<at::CPUGeneratorImpl>(9);
        at::Tensor kept;
        make_sampler(name, o)->run(r, [&](const StepInfo& i) {
          if (i.index + 2 == i.steps) kept = i.x.clone();
        });
        return kept;
      };
      CHECK(max_rel_diff(before_last("euler-ancestral", eta(1)), before_last("ancestral", {})) <
            1e-12);
    }
    const at::Tensor pp2s = run("dpmpp-2s", {}, model, *sde, times, xT).x;
    CHECK(max_rel_diff(run("dpmpp-2s-ancestral", eta(0), model, *sde, times, xT).x, pp2s) < 1e-12);
    CHECK(max_rel_diff(run("dpmpp-sde", eta(0), model, *sde, times, xT).x, pp2s) < 1e-12);
    CHECK(max_rel_diff(run("dpmpp-2m-sde", eta(0), model, *sde, times, xT).x,
                       run("dpmpp-2m", {}, model, *sde, times, xT).x) < 1e-12);
  }
}

TEST_CASE("sigma-space samplers reach their declared order on the Gaussian PF-ODE flow",
          "[kdiffusion][order]") {
  const GaussianCase gc = make_gaussian();
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
  const at::Tensor xT = at::randn({64, 4}, g, at::kDouble);
  struct Case {
    const char* name;
    SamplerOptions options;
    double order;
  };
  SamplerOptions heun;
  heun.ancestral_eta = 0;
  heun.sde_solver_heun = true;
  // dpmpp-3m-sde without noise is the reference form of 3M from its third step on (its DD term
  // weighted phi2 / 2, section 4.6): second order asymptotically, with a halved h^3 term that
  // still shows over 16..64 steps (measured 2.36 on vp-linear, 2.42 on edm): marked 2.5 below
  // and required to lie between 2 - 0.2 and 3. lms starts with Runge-Kutta 4 (measured 3.99,
  // 3.88); with k-diffusion's lower-order start it measures about 3.
  const std::vector<Case> cases = {{"dpm-2", {}, 2},
                                   {"lms", {}, 4},
                                   {"dpmpp-2m-sde", eta(0), 2},
                                   {"dpmpp-2m-sde", heun, 2},
                                   {"dpmpp-3m-sde", eta(0), 2.5}};
  for (const char* sde_name : {"vp-linear", "edm"}) {
    const SDEPtr sde = make_sde(sde_name);
    const SchedulePtr k = sde->schedule();
    const double T = sde->domain().hi, t_end = sde->default_t_end();
    GaussianMixtureModel model(gc.mixture(), k);
    const at::Tensor exact = gc.flow(xT, *k, T, t_end);
    for (const auto& c : cases) {
      std::vector<double> nfe, err;
      for (int n : {16, 24, 32, 48, 64}) {
        const auto times = make_time_grid(GridKind::UniformLambda, *k, n, T, t_end);
        const SampleResult res = run(c.name, c.options, model, *sde, times, xT);
        nfe.push_back(static_cast<double>(res.nfe));
        err.push_back(rms(res.x - exact));
      }
      const double p = fitted_order(nfe, err);
      INFO(sde_name << " " << c.name << ": fitted order " << p << ", errors " << err.front()
                    << " .. " << err.back());
      if (c.order == 2.5) {
        CHECK(p > 2.0 - 0.2);
        CHECK(p < 3.0);
      } else {
        CHECK(std::abs(p - c.order) < 0.2);
      }
    }
  }
}

TEST_CASE("ancestral and SDE samplers in sigma reproduce the mixture's marginal moments",
          "[kdiffusion][moments]") {
  // As for the other first-order stochastic samplers (test_samplers.cpp): ring2d, n = 10000 from
  // one prior draw, 200 steps; 4.5 standard errors per entry plus 0.01 for the O(h) bias.
  const GaussianMixture mix = GaussianMixture::ring2d();
  SamplerOptions heun;
  heun.sde_solver_heun = true;
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
    for (const char* name :
         {"euler-ancestral", "dpmpp-2s-ancestral", "dpmpp-sde", "dpmpp-2m-sde", "dpmpp-3m-sde"}) {
      INFO(sde_name << " " << name);
      const SampleResult res = run(name, {}, model, *sde, times, xT, 5);
      check_moments(res.x, m, C, 4.5, 0.01);
    }
    INFO(sde_name << " dpmpp-2m-sde (heun)");
    check_moments(run("dpmpp-2m-sde", heun, model, *sde, times, xT, 5).x, m, C, 4.5, 0.01);
  }
}

TEST_CASE("ancestral and SDE samplers in sigma: strong order 1 on a shared Brownian path",
          "[kdiffusion][order]") {
  // Gaussian data in D = 2 under vp-linear, t from 1 to 1e-3 on uniform-t grids, one x_T (128
  // rows) and one VirtualBrownianTree; reference: SRA with 4096 steps on that path. With eta = 1
  // each sampler is consistent with the reverse SDE driven by that path (docs/theory.md section
  // 4.15), with additive noise: strong order 1. Over 128..512 steps the measured orders are
  // 0.86 (euler-ancestral), 0.85 (dpmpp-2s-ancestral), 0.85 (dpmpp-sde), 1.2 (dpmpp-2m-sde) and
  // 1.5 (dpmpp-3m-sde, whose larger deterministic error still falls faster); on gmm64 over NFE
  // 50..800 (the default converge study) all lie within 0.06 of 1. Required: between 0.75 and
  // 1.6, and an error below 0.03 at 512 steps.
  const at::Tensor mu = at::tensor({0.5, -1.0}, at::kDouble).unsqueeze(0);
  const at::Tensor C = at::tensor({0.6, 0.25, 0.25, 0.3}, at::kDouble).view({1, 2, 2});
  const SDEPtr sde = make_sde("vp-linear");
  GaussianMixtureModel model(GaussianMixture(at::ones({1}, at::kDouble), mu, C, "g2"),
                             sde->schedule());
  const double T = 1.0, t_end = 1e-3;
  const auto tree = std::make_shared<VirtualBrownianTree>(t_end, T, 31, std::ldexp(1.0, -16));
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor xT = draw_prior(*sde, {128, 2}, g, at::kDouble);
  auto grid = [&](int N) {
    std::vector<double> times;
    for (int i = 0; i <= N; ++i) times.push_back(i == N ? t_end : T + i * (t_end - T) / N);
    return times;
  };
  const at::Tensor ref = run("sra", {}, model, *sde, grid(4096), xT, 0, tree).x;
  for (const char* name :
       {"euler-ancestral", "dpmpp-2s-ancestral", "dpmpp-sde", "dpmpp-2m-sde", "dpmpp-3m-sde"}) {
    std::vector<double> n, err;
    for (int N : {32, 64, 128, 256, 512}) {
      n.push_back(N);
      err.push_back(rms(run(name, {}, model, *sde, grid(N), xT, 0, tree).x - ref));
    }
    // The finest three step counts, where the pre-asymptotic deterministic error has faded.
    const double p = fitted_order({n.end() - 3, n.end()}, {err.end() - 3, err.end()});
    INFO(name << ": strong order " << p << " over 128..512 steps, errors " << err.front() << " .. "
              << err.back());
    CHECK(p > 0.75);
    CHECK(p < 1.6);
    CHECK(err.back() < 0.03);
  }
}

TEST_CASE("lower-order final steps: DPM-Solver's below-10 rule, off, and k-diffusion's",
          "[kdiffusion][multistep]") {
  // k-diffusion's 2M lowers no step that does not end at sigma = 0: dpmpp-2m with the rule off
  // is dpmpp-2m-sde without noise on every grid, and differs from the default on a 5-step grid;
  // on 20 steps (no lowering) the rules agree.
  const GaussianMixture mix = GaussianMixture::ring2d();
  const SDEPtr sde = make_sde("edm");
  const SchedulePtr k = sde->schedule();
  GaussianMixtureModel model(mix, k);
  const double T = sde->domain().hi, t_end = sde->default_t_end();
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(8);
  const at::Tensor xT = draw_prior(*sde, {32, 2}, g, at::kDouble);
  SamplerOptions off, to_zero;
  off.lower_order_final = LowerOrderFinal::Off;
  to_zero.lower_order_final = LowerOrderFinal::ToZero;
  for (int steps : {5, 9, 20}) {
    const auto times = make_time_grid(GridKind::Karras, *k, steps, T, t_end);
    const at::Tensor kd = run("dpmpp-2m-sde", eta(0), model, *sde, times, xT).x;
    const at::Tensor x_off = run("dpmpp-2m", off, model, *sde, times, xT).x;
    const at::Tensor x_zero = run("dpmpp-2m", to_zero, model, *sde, times, xT).x;
    const at::Tensor x_default = run("dpmpp-2m", {}, model, *sde, times, xT).x;
    INFO(steps << " steps");
    CHECK(max_rel_diff(x_off, kd) < 1e-12);
    CHECK(max_rel_diff(x_zero, kd) < 1e-12);
    if (steps < 10)
      CHECK(max_rel_diff(x_default, kd) > 1e-6);
    else
      CHECK(max_rel_diff(x_default, kd) < 1e-12);
  }
  CHECK(parse_lower_order_final("to-zero") == LowerOrderFinal::ToZero);
  CHECK_THROWS_WITH(parse_lower_order_final("never"), Catch::Contains("below-10, off, to-zero"));
}

TEST_CASE("NFE budgets: DPM-Solver-2 spends an odd budget with 2, ..., 2, 1, the rest is noted",
          "[kdiffusion][nfe]") {
  const GaussianMixture mix = GaussianMixture::ring2d();
  const SDEPtr sde = make_sde("vp-linear");
  const SchedulePtr k = sde->schedule();
  GaussianMixtureModel model(mix, k);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(2);
  const at::Tensor xT = draw_prior(*sde, {16, 2}, g, at::kDouble);
  for (int budget : {4, 5, 9, 10}) {
    SamplerOptions o;
    o.nfe_budget = budget;
    const auto s = make_sampler("dpm-solver-2", o);
    const int steps = s->steps_for_nfe(budget);
    CHECK(steps == (budget + 1) / 2);
    const auto times = make_time_grid(GridKind::UniformLambda, *k, steps, 1.0, 1e-3);
    const SampleResult res = run("dpm-solver-2", o, model, *sde, times, xT);
    CHECK(res.nfe == budget);
    if (budget % 2 == 1) {
      // The last step is DPM-Solver-1: the run equals order 2 up to the last grid point and then
      // one DDIM step.
      std::vector<double> head(times.begin(), times.end() - 1), tail(times.end() - 2, times.end());
      const at::Tensor x1 = run("dpm-solver-2", {}, model, *sde, head, xT).x;
      const at::Tensor x2 = run("dpm-solver-1", {}, model, *sde, tail, x1).x;
      CHECK(max_rel_diff(res.x, x2) < 1e-12);
    }
  }
  // Without a budget, steps_for_nfe spends at most the NFE asked for.
  CHECK(make_sampler("dpm-solver-2")->steps_for_nfe(5) == 2);
}

TEST_CASE("replayed noise: the generator's draws as blocks give the same bits, too few is an error",
          "[kdiffusion][noise]") {
  const GaussianMixture mix = GaussianMixture::ring2d();
  const SDEPtr sde = make_sde("vp-linear");
  const SchedulePtr k = sde->schedule();
  GaussianMixtureModel model(mix, k);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(6);
  const at::Tensor xT = draw_prior(*sde, {8, 2}, g, at::kDouble);
  const auto times = make_time_grid(GridKind::UniformT, *k, 12, 1.0, 1e-3);
  for (const char* name : {"euler-maruyama", "ancestral", "euler-ancestral", "dpmpp-sde",
                           "dpmpp-3m-sde", "sra", "pc"}) {
    INFO(name);
    // Count the draws with zeros, then write the generator's draws in that order.
    SampleRequest r;
    r.model = &model;
    r.sde = sde.get();
    r.times = times;
    r.x_init = xT;
    r.noise = NoiseReplay::counter();
    make_sampler(name)->run(r);
    const int64_t draws = r.noise->used();
    CHECK(draws > 0);
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(33);
    std::vector<at::Tensor> blocks;
    for (int64_t i = 0; i < draws; ++i)
      blocks.push_back(at::empty({8, 2}, at::kDouble).normal_(0.0, 1.0, gen));
    const at::Tensor with_gen = run(name, {}, model, *sde, times, xT, 33).x;
    r.noise = std::make_shared<NoiseReplay>(at::stack(blocks), "blocks");
    const at::Tensor replayed = make_sampler(name)->run(r).x;
    CHECK(at::equal(replayed, with_gen));
    CHECK(r.noise->used() == draws);
    // One block short: the run says so instead of drawing anything else.
    r.noise = std::make_shared<NoiseReplay>(at::stack(blocks).narrow(0, 0, draws - 1), "short");
    CHECK_THROWS_AS(make_sampler(name)->run(r), NoiseExhausted);
  }
}
