// Adaptive Runge-Kutta samplers (dopri5, cash-karp, fehlberg78), the reference solver, EDM
// Heun with churn, predictor-corrector and annealed Langevin: errors against the closed-form
// PF-ODE flow of Gaussian data, updates written out by hand, marginal moments of the ring
// mixture, NFE accounting, bad options.
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <limits>
#include <vector>

#include "models/gaussian_mixture.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "schedules/vp_discrete.hpp"
#include "solvers/noise.hpp"
#include "solvers/reference.hpp"
#include "solvers/registry.hpp"
#include "support.hpp"

using namespace sdekit;
using sdekit::test::check_moments;
using sdekit::test::fitted_order;
using sdekit::test::GaussianCase;
using sdekit::test::random_gaussian;
using sdekit::test::rms;

namespace {

double maxabs(const at::Tensor& a) {
  return a.abs().max().item<double>();
}

SampleRequest request(ScoreModel& m, const SDE& sde, std::vector<double> times, const at::Tensor& x,
                      uint64_t seed = 1) {
  SampleRequest r;
  r.model = &m;
  r.sde = &sde;
  r.times = std::move(times);
  r.x_init = x;
  r.generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return r;
}

SamplerOptions tolerances(double tol) {
  SamplerOptions o;
  o.rtol = o.atol = tol;
  return o;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

const char* const kAdaptive[] = {"dopri5", "cash-karp", "fehlberg78"};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Adaptive Runge-Kutta

TEST_CASE("adaptive RK keeps the global error within a small multiple of the tolerance",
          "[adaptive]") {
  // Gaussian data in D = 4, 64 rows from the prior, sampled from T to t_end. The error-per-step
  // controller bounds local errors by atol + rtol |x|; the global error is required to stay below
  // 10 tol (1 + max|x|) (measured: at most 1.17, cash-karp on edm at 1e-6; 0.56 for fehlberg78,
  // whose 7th-order error estimator is the weakest, on vp-linear at 1e-8). NFE must grow strictly
  // as tol shrinks.
  const GaussianCase gc = random_gaussian(4, 7);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
  for (const char* sde_name : {"vp-linear", "edm"}) {
    const SDEPtr sde = make_sde(sde_name);
    const SchedulePtr k = sde->schedule();
    const double T = sde->domain().hi, t_end = sde->default_t_end();
    GaussianMixtureModel model(gc.mixture(), k);
    const at::Tensor xT = draw_prior(*sde, {64, 4}, g, at::kDouble);
    const at::Tensor exact = gc.flow(xT, *k, T, t_end);
    const double scale = 1.0 + maxabs(exact);
    for (const char* name : kAdaptive) {
      int64_t prev_nfe = 0;
      for (double tol : {1e-4, 1e-6, 1e-8}) {
        const auto sampler = make_sampler(name, tolerances(tol));
        REQUIRE(sampler->adaptive());
        const SampleResult res = sampler->run(request(model, *sde, {T, t_end}, xT));
        const double err = maxabs(res.x - exact);
        INFO(sde_name << " " << name << " tol " << tol << ": max error " << err << " = "
                      << err / (tol * scale) << " tol (1 + max|x|), NFE " << res.nfe << ", "
                      << res.steps << " steps");
        CHECK(err < 10.0 * tol * scale);
        CHECK(res.nfe > prev_nfe);
        prev_nfe = res.nfe;
      }
    }
  }
}

TEST_CASE("adaptive RK encodes (t_end -> T) and decodes back to x_T", "[adaptive]") {
  // Encoding runs the PF-ODE forward in time from the data side. Both legs are compared with the
  // closed-form flow. Decoding: 10 tol (1 + max|x0|), as for sampling. Encoding expands
  // differences (on edm, x - E[x0|x] grows like sigma: a local error made at small sigma is
  // carried up to T with the state) and the 1e-4 runs take only about a dozen steps, so its bound
  // is 30 tol (1 + max|x_T|) (measured at most 14.7: cash-karp on edm at 1e-4; at most 2.7 for
  // dopri5), and the round trip encode -> decode -> encode returns x_T within 60 tol (1 +
  // max|x_T|) (measured at most 26).
  const GaussianCase gc = random_gaussian(4, 7);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(4);
  for (const char* sde_name : {"vp-linear", "edm"}) {
    const SDEPtr sde = make_sde(sde_name);
    const SchedulePtr k = sde->schedule();
    const double T = sde->domain().hi, t_end = sde->default_t_end();
    GaussianMixtureModel model(gc.mixture(), k);
    const at::Tensor xT = draw_prior(*sde, {64, 4}, g, at::kDouble);
    const at::Tensor x0 = gc.flow(xT, *k, T, t_end);
    const double scale = 1.0 + maxabs(xT);
    for (const char* name : kAdaptive) {
      for (double tol : {1e-4, 1e-8}) {
        const auto sampler = make_sampler(name, tolerances(tol));
        const SampleResult enc = sampler->run(request(model, *sde, {t_end, T}, x0));
        const SampleResult dec = sampler->run(request(model, *sde, {T, t_end}, enc.x));
        INFO(sde_name << " " << name << " tol " << tol << ": encode error "
                      << maxabs(enc.x - xT) / (tol * scale) << " tol (1 + max|x_T|), decode error "
                      << maxabs(dec.x - x0) / (tol * (1.0 + maxabs(x0)))
                      << " tol (1 + max|x0|), round trip "
                      << maxabs(sampler->run(request(model, *sde, {T, t_end}, xT)).x - x0)
                      << ", NFE " << enc.nfe << " + " << dec.nfe);
        CHECK(maxabs(enc.x - xT) < 30.0 * tol * scale);
        CHECK(maxabs(dec.x - x0) < 10.0 * tol * (1.0 + maxabs(x0)));
        const SampleResult back = sampler->run(request(model, *sde, {t_end, T}, dec.x));
        CHECK(maxabs(back.x - xT) < 60.0 * tol * scale);
      }
    }
  }
}

TEST_CASE("adaptive RK counts NFE at the model and reports every accepted step",
          "[adaptive][nfe]") {
  // Model calls per run, from the stage structure: dopri5 (FSAL) 1 + 6 per attempted step;
  // cash-karp 1 per accepted state (except the last) + 5 per attempt; fehlberg78 likewise with
  // 12. Attempts = accepted + rejected = error-norm syncs. The observer sees each accepted step
  // once, contiguous from T to t_end, with steps = -1.
  const GaussianCase gc = random_gaussian(4, 7);
  const SDEPtr sde = make_sde("edm");
  const SchedulePtr k = sde->schedule();
  GaussianMixtureModel model(gc.mixture(), k);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor xT = draw_prior(*sde, {16, 4}, g, at::kDouble);
  const double T = 80.0, t_end = 0.002;
  for (const char* name : kAdaptive) {
    const SamplerOptions opt = tolerances(1e-7);
    std::vector<StepInfo> seen;
    std::vector<std::pair<double, double>> spans;
    int64_t last_nfe = 0;
    bool monotone = true;
    const AdaptiveSolution sol =
        adaptive_solve(name, opt, request(model, *sde, {T, t_end}, xT), [&](const StepInfo& i) {
          spans.emplace_back(i.t_from, i.t_to);
          monotone = monotone && i.nfe > last_nfe && i.steps == -1 &&
                     i.index == static_cast<int>(spans.size()) - 1;
          last_nfe = i.nfe;
        });
    const AdaptiveStats& st = sol.stats;
    INFO(name << ": NFE " << st.nfe << ", accepted " << st.accepted << ", rejected " << st.rejected
              << ", syncs per step " << st.syncs_per_step());
    const int64_t attempts = st.accepted + st.rejected;
    CHECK(st.norm_syncs == attempts);
    CHECK(st.finite_syncs == st.accepted);
    CHECK(st.syncs_per_step() == Approx(1.0 + static_cast<double>(attempts) / st.accepted));
    if (std::string(name) == "dopri5") CHECK(st.nfe == 1 + 6 * attempts);
    if (std::string(name) == "cash-karp") CHECK(st.nfe == st.accepted + 5 * attempts);
    if (std::string(name) == "fehlberg78") CHECK(st.nfe == st.accepted + 12 * attempts);
    REQUIRE(static_cast<int>(spans.size()) == st.accepted);
    CHECK(monotone);
    CHECK(last_nfe == st.nfe);
    CHECK(spans.front().first == T);
    CHECK(spans.back().second == t_end);
    for (size_t i = 1; i < spans.size(); ++i) {
      CHECK(spans[i].first == spans[i - 1].second);
      CHECK(spans[i].second < spans[i].first);
    }
    // Sampler::run takes the same steps.
    const SampleResult res = make_sampler(name, opt)->run(request(model, *sde, {T, t_end}, xT));
    CHECK(res.nfe == st.nfe);
    CHECK(res.steps == st.accepted);
    CHECK(at::equal(res.x, sol.x));
  }
}

TEST_CASE("dopri5 dense output interpolates at the request's intermediate times",
          "[adaptive][dense]") {
  // The dense-output stepper does not stop at the 9 intermediate times; its 4th-order continuous
  // extension must still match the closed-form flow there within 10 tol (1 + max|x|), like the
  // end point. Sampler::run with dense_output returns the same end state as adaptive_solve.
  const GaussianCase gc = random_gaussian(4, 7);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(6);
  for (const char* sde_name : {"vp-linear", "edm"}) {
    const SDEPtr sde = make_sde(sde_name);
    const SchedulePtr k = sde->schedule();
    const double T = sde->domain().hi, t_end = sde->default_t_end();
    GaussianMixtureModel model(gc.mixture(), k);
    const at::Tensor xT = draw_prior(*sde, {32, 4}, g, at::kDouble);
    const std::vector<double> times = make_time_grid(GridKind::UniformLambda, *k, 10, T, t_end);
    for (double tol : {1e-5, 1e-8}) {
      SamplerOptions opt = tolerances(tol);
      opt.dense_output = true;
      const AdaptiveSolution sol = adaptive_solve("dopri5", opt, request(model, *sde, times, xT));
      REQUIRE(sol.observed.size() == times.size());
      CHECK(at::equal(sol.observed.front(), xT));
      CHECK(at::equal(sol.observed.back(), sol.x));
      for (size_t i = 0; i < times.size(); ++i) {
        const at::Tensor exact = gc.flow(xT, *k, T, times[i]);
        const double err = maxabs(sol.observed[i] - exact);
        INFO(sde_name << " tol " << tol << " t = " << times[i] << ": error "
                      << err / (tol * (1.0 + maxabs(exact))) << " tol (1 + max|x|)");
        CHECK(err < 10.0 * tol * (1.0 + maxabs(exact)));
      }
      // The steps are free of the grid: some accepted step strictly contains a grid time.
      int straddling = 0;
      const SampleResult res =
          make_sampler("dopri5", opt)->run(request(model, *sde, times, xT), [&](const StepInfo& i) {
            for (size_t j = 1; j + 1 < times.size(); ++j)
              straddling += i.t_from > times[j] && times[j] > i.t_to;
          });
      CHECK(straddling > 0);
      CHECK(at::equal(res.x, sol.x));
      CHECK(res.nfe == sol.stats.nfe);
    }
  }
}

TEST_CASE("adaptive RK: running out of max_steps names the time reached", "[adaptive][errors]") {
  const GaussianCase gc = random_gaussian(4, 7);
  const SDEPtr sde = make_sde("vp-linear");
  GaussianMixtureModel model(gc.mixture(), sde->schedule());
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(7);
  const at::Tensor xT = at::randn({8, 4}, g, at::kDouble);
  for (const char* name : kAdaptive) {
    SamplerOptions opt = tolerances(1e-9);
    opt.max_steps = 4;
    INFO(name);
    CHECK_THROWS_WITH(make_sampler(name, opt)->run(request(model, *sde, {1.0, 1e-3}, xT)),
                      Catch::Contains("max_steps = 4") && Catch::Contains("exhausted at t = "));
  }
  SamplerOptions opt = tolerances(1e-9);
  opt.max_steps = 4;
  opt.dense_output = true;
  CHECK_THROWS_WITH(make_sampler("dopri5", opt)->run(request(model, *sde, {1.0, 1e-3}, xT)),
                    Catch::Contains("max_steps = 4") && Catch::Contains("exhausted at t = "));
  // The time named is where the run stood: the end of the last accepted step.
  double reached = 1.0;
  opt.dense_output = false;
  opt.max_steps = 8;
  try {
    make_sampler("dopri5", opt)->run(request(model, *sde, {1.0, 1e-3}, xT), [&](const StepInfo& i) {
      reached = i.t_to;
    });
    FAIL("expected max_steps to run out");
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    const std::string key = "exhausted at t = ";
    const size_t at = what.find(key);
    REQUIRE(at != std::string::npos);
    const double named = std::stod(what.substr(at + key.size()));
    INFO(what << " (last accepted step ended at " << reached << ")");
    CHECK(reached < 1.0);
    CHECK(named == Approx(reached).epsilon(1e-9));
  }
}

TEST_CASE("reference_solve agrees with the closed form in 64-d and runs on gmm64",
          "[adaptive][reference]") {
  const SDEPtr sde = make_sde("vp-linear");
  const SchedulePtr k = sde->schedule();
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(8);
  {
    // 64-d single Gaussian, 64 rows, t = 1 -> 1e-3 at rtol = atol = 1e-10: error vs the closed
    // form below 1e-8 (measured 1.5e-11), and the estimate (measured 1.1e-10) finite, not below
    // the true error and below 1e-8.
    const GaussianCase gc = random_gaussian(64, 11);
    GaussianMixtureModel model(gc.mixture(), k);
    const at::Tensor xT = at::randn({64, 64}, g, at::kFloat);  // float32 in, float64 out
    const ReferenceSolution ref = reference_solve(model, *sde, xT, 1.0, 1e-3);
    CHECK(ref.x.scalar_type() == at::kDouble);
    const double err = maxabs(ref.x - gc.flow(xT.to(at::kDouble), *k, 1.0, 1e-3));
    INFO("error " << err << ", estimate " << ref.error_estimate << ", NFE " << ref.stats.nfe
                  << " + " << ref.check_stats.nfe);
    CHECK(err < 1e-8);
    CHECK(std::isfinite(ref.error_estimate));
    CHECK(ref.error_estimate >= err);
    CHECK(ref.error_estimate < 1e-8);
  }
  {
    // gmm64 (5 anisotropic components, 64-d), 64 rows, float64, 1e-10: the estimate is finite
    // and small. Run time on the 2-core development machine: 0.5 s (901 + 577 model calls, 148
    // accepted steps), up to about 3 s while other builds ran (reported, not asserted).
    GaussianMixtureModel model(GaussianMixture::gmm64(), k);
    const at::Tensor xT = at::randn({64, 64}, g, at::kDouble);
    const auto t0 = std::chrono::steady_clock::now();
    const ReferenceSolution ref = reference_solve(model, *sde, xT, 1.0, 1e-3);
    const double secs = seconds_since(t0);
    INFO("gmm64: " << secs << " s, estimate " << ref.error_estimate << ", NFE " << ref.stats.nfe
                   << " + " << ref.check_stats.nfe << ", steps " << ref.stats.accepted);
    CHECK(std::isfinite(ref.error_estimate));
    CHECK(ref.error_estimate < 1e-7);
    // Either direction: encoding the result returns x_T within the same kind of bound.
    const ReferenceSolution back = reference_solve(model, *sde, ref.x, 1e-3, 1.0);
    CHECK(maxabs(back.x - xT) < 1e-7);
  }
}

// ---------------------------------------------------------------------------------------------
// EDM Heun

TEST_CASE("edm-heun with S_churn = 0 is the heun sampler on the edm schedule", "[edm]") {
  const SDEPtr sde = make_sde("edm");
  const SchedulePtr k = sde->schedule();
  GaussianMixtureModel model(GaussianMixture::ring2d(), k);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(9);
  const at::Tensor xT = draw_prior(*sde, {128, 2}, g, at::kDouble);
  const auto times = make_time_grid(GridKind::Karras, *k, 18, 80.0, 0.002);
  const auto edm = make_sampler("edm-heun");
  CHECK_FALSE(edm->stochastic());
  CHECK(edm->order() == 2.0);
  const SampleResult a = edm->run(request(model, *sde, times, xT));
  const SampleResult b = make_sampler("heun")->run(request(model, *sde, times, xT));
  INFO("max diff " << maxabs(a.x - b.x));
  CHECK(at::allclose(a.x, b.x, 1e-12, 1e-12));
  CHECK(a.nfe == 36);
  CHECK(b.nfe == 36);
}

TEST_CASE("edm-heun with S_churn = 0 converges at order 2 on other schedules", "[edm][order]") {
  // On alpha != 1 schedules it is Heun in (sigma/alpha, x/alpha), not Heun in (t, x): the error
  // against the closed-form flow must still fall at slope 2 (within 0.15) on Karras grids.
  const GaussianCase gc = random_gaussian(4, 7);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(10);
  for (const char* sde_name : {"vp-linear", "ve", "sub-vp"}) {
    const SDEPtr sde = make_sde(sde_name);
    const SchedulePtr k = sde->schedule();
    const double T = sde->domain().hi, t_end = sde->default_t_end();
    GaussianMixtureModel model(gc.mixture(), k);
    const at::Tensor xT = draw_prior(*sde, {64, 4}, g, at::kDouble);
    const at::Tensor exact = gc.flow(xT, *k, T, t_end);
    std::vector<double> nfe, err;
    for (int steps : {32, 48, 64, 96, 128}) {
      const auto times = make_time_grid(GridKind::Karras, *k, steps, T, t_end);
      const SampleResult r = make_sampler("edm-heun")->run(request(model, *sde, times, xT));
      nfe.push_back(static_cast<double>(r.nfe));
      err.push_back(rms(r.x - exact));
    }
    const double p = fitted_order(nfe, err);
    INFO(sde_name << ": fitted order " << p << ", RMS errors " << err.front() << " .. "
                  << err.back());
    CHECK(std::abs(p - 2.0) < 0.15);
  }
}

TEST_CASE("edm-heun with churn: one step written out (Karras et al. Algorithm 2)", "[edm]") {
  // vp-linear, so the scaled variables matter: x_hat = x / alpha, sigma_hat = sigma / alpha.
  const SDEPtr sde = make_sde("vp-linear");
  const SchedulePtr k = sde->schedule();
  GaussianMixtureModel model(GaussianMixture::ring2d(), k);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(11);
  const at::Tensor x = at::randn({8, 2}, g, at::kDouble);
  SamplerOptions o;
  o.s_churn = 3.0;
  o.s_noise = 1.01;
  const std::vector<double> times = {0.5, 0.4, 0.3, 0.2};  // N = 3: gamma = min(1, 0.414)
  at::Tensor first;
  make_sampler("edm-heun", o)->run(request(model, *sde, times, x, 12), [&](const StepInfo& i) {
    if (i.index == 0) first = i.x.clone();
  });
  auto sh = [&](double t) { return k->sigma(t) / k->alpha(t); };
  auto D = [&](const at::Tensor& xh, double t) {
    const at::Tensor xt = xh * k->alpha(t);
    const double a = k->alpha(t), s = k->sigma(t);
    return (xt + s * s * model.predict_at(xt, t)) / a;  // x0 from the score
  };
  const double gamma = std::sqrt(2.0) - 1.0;
  const double s_hat = sh(0.5) * (1.0 + gamma);
  const double t_hat = k->t_of_lambda(-std::log(s_hat));
  at::Generator g2 = at::make_generator<at::CPUGeneratorImpl>(12);
  const at::Tensor z = at::randn({8, 2}, g2, at::kDouble);
  const at::Tensor xh = x / k->alpha(0.5) + std::sqrt(s_hat * s_hat - sh(0.5) * sh(0.5)) * 1.01 * z;
  const at::Tensor d = (xh - D(xh, t_hat)) / s_hat;
  const at::Tensor xe = xh + (sh(0.4) - s_hat) * d;
  const at::Tensor d2 = (xe - D(xe, 0.4)) / sh(0.4);
  const at::Tensor expected = (xh + (sh(0.4) - s_hat) * 0.5 * (d + d2)) * k->alpha(0.4);
  INFO("max diff " << maxabs(first - expected));
  CHECK(at::allclose(first, expected, 1e-10, 1e-10));
}

TEST_CASE("edm-heun with churn reproduces the ring mixture's moments", "[edm][moments]") {
  // ring2d, n = 10000 from one prior draw, Karras grid of 64 steps, S_churn = 10 (gamma = 0.156)
  // on sigma_hat in [0.05, 50], S_noise = 1. Statistic: each mean and covariance entry at t_end
  // against the exact p_{t_end}; tolerance 4.5 standard errors (estimated from the samples) plus a
  // 0.01 allowance for the discretisation bias. Both on edm (alpha = 1) and on vp-linear (the
  // scaled formulation).
  const GaussianMixture mix = GaussianMixture::ring2d();
  SamplerOptions o;
  o.s_churn = 10.0;
  o.s_tmin = 0.05;
  o.s_tmax = 50.0;
  const auto sampler = make_sampler("edm-heun", o);
  CHECK(sampler->stochastic());
  for (const char* sde_name : {"edm", "vp-linear"}) {
    const SDEPtr sde = make_sde(sde_name);
    const SchedulePtr k = sde->schedule();
    GaussianMixtureModel model(mix, k);
    const double T = sde->domain().hi, t_end = sde->default_t_end();
    const auto times = make_time_grid(GridKind::Karras, *k, 64, T, t_end);
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(13);
    const at::Tensor xT = draw_prior(*sde, {10000, 2}, g, at::kDouble);
    const auto t0 = std::chrono::steady_clock::now();
    const SampleResult res = sampler->run(request(model, *sde, times, xT, 14));
    INFO(sde_name << ": " << seconds_since(t0) << " s");
    CHECK(res.nfe == 128);
    check_moments(res.x, mix.mean(k->alpha(t_end)),
                  mix.covariance(k->alpha(t_end), k->sigma(t_end)), 4.5, 0.01);
  }
}

// ---------------------------------------------------------------------------------------------
// Predictor-corrector and annealed Langevin

TEST_CASE("pc: predictors and the corrector written out by hand", "[pc]") {
  const auto disc = std::make_shared<VPDiscrete>(VPDiscrete::linear());
  const AffineSDE sde(disc);
  GaussianMixtureModel model(GaussianMixture::ring2d(), disc);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(15);
  const at::Tensor x = at::randn({16, 2}, g, at::kDouble);
  const int n = 400;
  const double s = n / 1000.0, t = (n - 1) / 1000.0;
  const double beta = disc->beta(n);
  auto first_step = [&](const SamplerOptions& o) {
    at::Tensor first;
    make_sampler("pc", o)->run(request(model, sde, {s, t, t / 2}, x, 16), [&](const StepInfo& i) {
      if (i.index == 0) first = i.x.clone();
    });
    return first;
  };
  at::Generator g2 = at::make_generator<at::CPUGeneratorImpl>(16);
  const at::Tensor z1 = at::randn({16, 2}, g2, at::kDouble);  // predictor noise
  const at::Tensor z2 = at::randn({16, 2}, g2, at::kDouble);  // corrector noise
  const at::Tensor score = model.predict_at(x, s);
  {
    // Reverse diffusion on a consecutive DDPM step (Song et al.'s VP discretisation):
    // x <- (2 - sqrt(1 - beta_n)) x + beta_n score + sqrt(beta_n) z.
    SamplerOptions o;
    o.corrector_steps = 0;
    const at::Tensor expected =
        (2.0 - std::sqrt(1.0 - beta)) * x + beta * score + std::sqrt(beta) * z1;
    CHECK(at::allclose(first_step(o), expected, 1e-12, 1e-12));
  }
  {
    // One Langevin corrector step after it, at t: e = 2 (1 - beta_n) (r mean||z|| / mean||s||)^2.
    SamplerOptions o;
    o.corrector_steps = 1;
    o.snr = 0.2;
    const at::Tensor xp = (2.0 - std::sqrt(1.0 - beta)) * x + beta * score + std::sqrt(beta) * z1;
    const at::Tensor sc = model.predict_at(xp, t);
    const double gn = sc.norm(2, 1).mean().item<double>(), zn = z2.norm(2, 1).mean().item<double>();
    const double e = 2.0 * (1.0 - beta) * std::pow(0.2 * zn / gn, 2);
    const at::Tensor expected = xp + e * sc + std::sqrt(2.0 * e) * z2;
    CHECK(at::allclose(first_step(o), expected, 1e-12, 1e-12));
  }
  {
    // Euler-Maruyama predictor without corrector is the euler-maruyama sampler.
    SamplerOptions o;
    o.corrector_steps = 0;
    o.pc_predictor = PCPredictor::EulerMaruyama;
    const std::vector<double> times = {0.9, 0.6, 0.3, 0.05};
    const SampleResult a = make_sampler("pc", o)->run(request(model, sde, times, x, 17));
    const SampleResult b = make_sampler("euler-maruyama")->run(request(model, sde, times, x, 17));
    CHECK(at::allclose(a.x, b.x, 1e-12, 1e-12));
  }
  {
    // Ancestral predictor: the ancestral sampler's steps (which skip the noise on the last step
    // only): equal after every step but the last.
    SamplerOptions o;
    o.corrector_steps = 0;
    o.pc_predictor = PCPredictor::Ancestral;
    const std::vector<double> times = {0.9, 0.6, 0.3, 0.05};
    std::vector<at::Tensor> a, b;
    make_sampler("pc", o)->run(request(model, sde, times, x, 18),
                               [&](const StepInfo& i) { a.push_back(i.x.clone()); });
    make_sampler("ancestral")->run(request(model, sde, times, x, 18), [&](const StepInfo& i) {
      b.push_back(i.x.clone());
    });
    REQUIRE(a.size() == 3);
    CHECK(at::allclose(a[0], b[0], 1e-12, 1e-12));
    CHECK(at::allclose(a[1], b[1], 1e-12, 1e-12));
    CHECK_FALSE(at::allclose(a[2], b[2], 1e-6, 1e-6));
  }
}

TEST_CASE("pc and annealed Langevin count their NFE per step", "[pc][nfe]") {
  const SDEPtr sde = make_sde("ve");
  GaussianMixtureModel model(GaussianMixture::ring2d(), sde->schedule());
  const auto times = make_time_grid(GridKind::UniformT, *sde->schedule(), 9, 1.0, 1e-5);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(25);
  const at::Tensor xT = at::randn({4, 2}, g, at::kDouble);
  for (int c : {0, 1, 3}) {
    SamplerOptions o;
    o.corrector_steps = c;
    const auto s = make_sampler("pc", o);
    std::vector<int64_t> nfe;
    const SampleResult r =
        s->run(request(model, *sde, times, xT), [&](const StepInfo& i) { nfe.push_back(i.nfe); });
    INFO("corrector_steps " << c);
    CHECK(s->nfe_per_step() == 1 + c);
    CHECK(r.nfe == 9 * (1 + c));
    REQUIRE(nfe.size() == 9);
    for (size_t i = 0; i < nfe.size(); ++i) CHECK(nfe[i] == static_cast<int64_t>(i + 1) * (1 + c));
  }
  for (int K : {1, 7}) {
    SamplerOptions o;
    o.langevin_steps = K;
    const auto s = make_sampler("annealed-langevin", o);
    const SampleResult r = s->run(request(model, *sde, times, xT));
    INFO("langevin_steps " << K);
    CHECK(s->nfe_per_step() == K);
    CHECK(r.nfe == 9 * K);  // K per noise level after the first (x_init is taken at times[0])
    CHECK(r.steps == 9);
  }
}

TEST_CASE("annealed Langevin: one level written out (NCSN Algorithm 1)", "[langevin]") {
  // vp-linear: x is rescaled by alpha_t / alpha_s, then K = 2 moves with
  // a = e sigma_t^2 / (sigma_L / alpha_L)^2.
  const SDEPtr sde = make_sde("vp-linear");
  const SchedulePtr k = sde->schedule();
  GaussianMixtureModel model(GaussianMixture::ring2d(), k);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(19);
  const at::Tensor x = at::randn({8, 2}, g, at::kDouble);
  SamplerOptions o;
  o.langevin_steps = 2;
  o.langevin_eps = 1e-3;
  const std::vector<double> times = {0.6, 0.5, 0.01};
  at::Tensor first;
  make_sampler("annealed-langevin", o)
      ->run(request(model, *sde, times, x, 20), [&](const StepInfo& i) {
        if (i.index == 0) first = i.x.clone();
      });
  at::Generator g2 = at::make_generator<at::CPUGeneratorImpl>(20);
  const double sL = k->sigma(0.01) / k->alpha(0.01);
  const double a = 1e-3 * k->sigma(0.5) * k->sigma(0.5) / (sL * sL);
  at::Tensor y = x * (k->alpha(0.5) / k->alpha(0.6));
  for (int j = 0; j < 2; ++j) {
    const at::Tensor sc = model.predict_at(y, 0.5);
    y = y + 0.5 * a * sc + std::sqrt(a) * at::randn({8, 2}, g2, at::kDouble);
  }
  CHECK(at::allclose(first, y, 1e-12, 1e-12));
}

TEST_CASE("pc reproduces the ring mixture's moments", "[pc][moments]") {
  // ring2d, n = 10000 from one prior draw, 100 uniform-t steps, 1 corrector step (snr 0.16) after
  // each reverse-diffusion predictor step: 200 NFE. Statistic: each mean / covariance entry at
  // t_end within 4.5 standard errors + 0.02 (the Langevin step's own bias adds to the predictor's
  // O(h) weak error).
  const GaussianMixture mix = GaussianMixture::ring2d();
  for (const char* sde_name : {"vp-linear", "ve"}) {
    const SDEPtr sde = make_sde(sde_name);
    const SchedulePtr k = sde->schedule();
    GaussianMixtureModel model(mix, k);
    const double T = sde->domain().hi, t_end = sde->default_t_end();
    const auto times = make_time_grid(GridKind::UniformT, *k, 100, T, t_end);
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(21);
    const at::Tensor xT = draw_prior(*sde, {10000, 2}, g, at::kDouble);
    const auto t0 = std::chrono::steady_clock::now();
    const SampleResult res = make_sampler("pc")->run(request(model, *sde, times, xT, 22));
    INFO(sde_name << ": " << seconds_since(t0) << " s");
    CHECK(res.nfe == 200);
    check_moments(res.x, mix.mean(k->alpha(t_end)),
                  mix.covariance(k->alpha(t_end), k->sigma(t_end)), 4.5, 0.02);
  }
}

TEST_CASE("annealed Langevin reproduces the ring mixture's moments", "[langevin][moments]") {
  // ve (NCSN's geometric levels = a uniform-t grid) and vp-linear (the scaled variable), ring2d,
  // n = 10000 from the prior, 60 levels x K = 4 moves, e = 1e-4 (a = e sigma_i^2 / sigma_L^2):
  // 240 NFE. Statistic: each mean / covariance entry at t_end within 4.5 standard errors + 0.02
  // (the bias of Langevin with a finite step and finite mixing time per level).
  const GaussianMixture mix = GaussianMixture::ring2d();
  SamplerOptions o;
  o.langevin_steps = 4;
  o.langevin_eps = 1e-4;
  for (const char* sde_name : {"ve", "vp-linear"}) {
    const SDEPtr sde = make_sde(sde_name);
    const SchedulePtr k = sde->schedule();
    GaussianMixtureModel model(mix, k);
    const double T = sde->domain().hi, t_end = sde->default_t_end();
    const auto times = make_time_grid(GridKind::UniformT, *k, 60, T, t_end);
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(23);
    const at::Tensor xT = draw_prior(*sde, {10000, 2}, g, at::kDouble);
    const auto t0 = std::chrono::steady_clock::now();
    const SampleResult res =
        make_sampler("annealed-langevin", o)->run(request(model, *sde, times, xT, 24));
    INFO(sde_name << ": " << seconds_since(t0) << " s");
    CHECK(res.nfe == 240);
    check_moments(res.x, mix.mean(k->alpha(t_end)),
                  mix.covariance(k->alpha(t_end), k->sigma(t_end)), 4.5, 0.02);
  }
}

TEST_CASE("stochastic samplers: same seed, same bits", "[pc][langevin][edm][determinism]") {
  const SDEPtr sde = make_sde("vp-linear");
  GaussianMixtureModel model(GaussianMixture::ring2d(), sde->schedule());
  const auto times = make_time_grid(GridKind::UniformT, *sde->schedule(), 10, 1.0, 1e-3);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(26);
  const at::Tensor xT = at::randn({32, 2}, g, at::kDouble);
  SamplerOptions o;
  o.s_churn = 5.0;
  o.langevin_steps = 3;
  for (const char* name : {"edm-heun", "pc", "annealed-langevin"}) {
    const auto s = make_sampler(name, o);
    REQUIRE(s->stochastic());
    const SampleResult a = s->run(request(model, *sde, times, xT, 42)),
                       b = s->run(request(model, *sde, times, xT, 42)),
                       c = s->run(request(model, *sde, times, xT, 43));
    INFO(name);
    CHECK(at::equal(a.x, b.x));
    CHECK_FALSE(at::allclose(a.x, c.x));
  }
}

// ---------------------------------------------------------------------------------------------
// Bad options

TEST_CASE("bad options name the option", "[adaptive][pc][langevin][edm][errors]") {
  auto with = [](auto set) {
    SamplerOptions o;
    set(o);
    return o;
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const char* name : kAdaptive) {
    INFO(name);
    CHECK_THROWS_AS(make_sampler(name, with([](SamplerOptions& o) { o.rtol = 0; })),
                    std::invalid_argument);
    CHECK_THROWS_WITH(make_sampler(name, with([](SamplerOptions& o) { o.rtol = -1e-6; })),
                      Catch::Contains("rtol must be > 0"));
    CHECK_THROWS_WITH(make_sampler(name, with([](SamplerOptions& o) { o.rtol = 0; })),
                      Catch::Contains("rtol must be > 0"));
    CHECK_THROWS_WITH(make_sampler(name, with([&](SamplerOptions& o) { o.rtol = nan; })),
                      Catch::Contains("rtol must be > 0"));
    CHECK_THROWS_WITH(make_sampler(name, with([](SamplerOptions& o) { o.atol = 0; })),
                      Catch::Contains("atol must be > 0"));
    CHECK_THROWS_WITH(make_sampler(name, with([](SamplerOptions& o) { o.max_steps = 0; })),
                      Catch::Contains("max_steps must be >= 1"));
  }
  CHECK_NOTHROW(make_sampler("dopri5", with([](SamplerOptions& o) { o.dense_output = true; })));
  for (const char* name : {"cash-karp", "fehlberg78"}) {
    CHECK_THROWS_AS(make_sampler(name, with([](SamplerOptions& o) { o.dense_output = true; })),
                    std::invalid_argument);
    CHECK_THROWS_WITH(make_sampler(name, with([](SamplerOptions& o) { o.dense_output = true; })),
                      Catch::Contains("dense_output") && Catch::Contains("dopri5"));
  }
  const SDEPtr sde = make_sde("vp-linear");
  GaussianMixtureModel model(GaussianMixture::ring2d(), sde->schedule());
  const at::Tensor x = at::zeros({2, 2}, at::kDouble);
  CHECK_THROWS_WITH(
      adaptive_solve("rk45", SamplerOptions{}, request(model, *sde, {1.0, 0.1}, x)),
      Catch::Contains("unknown adaptive Runge-Kutta method 'rk45'") && Catch::Contains("dopri5"));
  CHECK_THROWS_WITH(reference_solve(model, *sde, x, 1.0, 0.1, -1.0),
                    Catch::Contains("rtol must be > 0"));
  CHECK_THROWS_WITH(reference_solve(model, *sde, x, 1.0, 0.0), Catch::Contains("times[1] = 0"));

  CHECK_THROWS_WITH(make_sampler("edm-heun", with([](SamplerOptions& o) { o.s_churn = -1; })),
                    Catch::Contains("s_churn must be >= 0"));
  CHECK_THROWS_WITH(make_sampler("edm-heun", with([](SamplerOptions& o) { o.s_noise = -0.5; })),
                    Catch::Contains("s_noise must be >= 0"));
  CHECK_THROWS_WITH(make_sampler("edm-heun", with([](SamplerOptions& o) { o.s_tmin = -1; })),
                    Catch::Contains("s_tmin must be >= 0"));
  CHECK_THROWS_WITH(make_sampler("edm-heun", with([](SamplerOptions& o) {
                                   o.s_tmin = 2;
                                   o.s_tmax = 1;
                                 })),
                    Catch::Contains("s_tmax must be >= s_tmin"));

  CHECK_THROWS_WITH(make_sampler("pc", with([](SamplerOptions& o) { o.snr = -0.1; })),
                    Catch::Contains("snr must be >= 0"));
  CHECK_THROWS_WITH(make_sampler("pc", with([](SamplerOptions& o) { o.corrector_steps = -1; })),
                    Catch::Contains("corrector_steps must be >= 0"));
  CHECK_THROWS_WITH(
      make_sampler("annealed-langevin", with([](SamplerOptions& o) { o.langevin_eps = -1e-5; })),
      Catch::Contains("langevin_eps must be > 0"));
  CHECK_THROWS_WITH(
      make_sampler("annealed-langevin", with([](SamplerOptions& o) { o.langevin_eps = 0; })),
      Catch::Contains("langevin_eps must be > 0"));
  CHECK_THROWS_WITH(
      make_sampler("annealed-langevin", with([](SamplerOptions& o) { o.langevin_steps = 0; })),
      Catch::Contains("langevin_steps must be >= 1"));
  // Each of these is a std::invalid_argument.
  CHECK_THROWS_AS(make_sampler("pc", with([](SamplerOptions& o) { o.snr = -0.1; })),
                  std::invalid_argument);
  CHECK_THROWS_AS(make_sampler("edm-heun", with([](SamplerOptions& o) { o.s_churn = -1; })),
                  std::invalid_argument);
  CHECK_THROWS_AS(
      make_sampler("annealed-langevin", with([](SamplerOptions& o) { o.langevin_eps = -1; })),
      std::invalid_argument);
}
