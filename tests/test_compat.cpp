// The conventions of the reference implementations (docs/theory.md section 4.17): the step to
// sigma = 0, k-diffusion's lower-order rule, DPM-Solver's official singlestep rule, the
// adaptive DPM-Solver++ variants and their controller, and the --compat presets. The references
// here are written from the published algorithms, loop for loop, independently of the samplers.
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "experiments/converge.hpp"
#include "experiments/fid_table.hpp"
#include "models/gaussian_mixture.hpp"
#include "models/predictor.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/compat.hpp"
#include "solvers/noise.hpp"
#include "solvers/registry.hpp"
#include "solvers/sample.hpp"
#include "support.hpp"

using namespace sdekit;

namespace {

/// A model that records the time of every call.
class Recording final : public ScoreModel {
 public:
  explicit Recording(ScoreModel& inner) : inner_(inner) {}
  Param param() const override { return inner_.param(); }
  std::string name() const override { return inner_.name(); }
  at::Tensor predict(const at::Tensor& x, const at::Tensor& t) override {
    times.push_back(t.reshape({-1})[0].item<double>());
    return inner_.predict(x, t);
  }
  at::Tensor predict_at(const at::Tensor& x, double t) override {
    times.push_back(t);
    return inner_.predict_at(x, t);
  }
  std::vector<double> times;

 private:
  ScoreModel& inner_;
};

SampleResult run(const std::string& name, const SamplerOptions& o, ScoreModel& m, const SDE& sde,
                 const std::vector<double>& times, const at::Tensor& x, bool to_zero = false) {
  SampleRequest r;
  r.model = &m;
  r.sde = &sde;
  r.times = times;
  r.x_init = x;
  r.to_zero = to_zero;
  r.generator = at::make_generator<at::CPUGeneratorImpl>(3);
  return make_sampler(name, o)->run(r);
}

double max_rel_diff(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

/// k-diffusion's get_sigmas_karras(n, sigma_min, sigma_max, rho): n sigmas, then 0.
std::vector<double> karras_sigmas(int n, double smin, double smax, double rho) {
  std::vector<double> s;
  for (int i = 0; i < n; ++i) {
    const double ramp = n == 1 ? 0.0 : static_cast<double>(i) / (n - 1);
    const double a = std::pow(smax, 1.0 / rho), b = std::pow(smin, 1.0 / rho);
    s.push_back(std::pow(a + ramp * (b - a), rho));
  }
  s.push_back(0.0);
  return s;
}

struct EdmCase {
  SDEPtr sde = make_sde("edm");
  SchedulePtr k = sde->schedule();
  GaussianMixture mix = GaussianMixture::ring2d();
  GaussianMixtureModel model{mix, k};
  Predictor pred{model, k.get()};
  at::Tensor xT;
  EdmCase() {
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(11);
    xT = draw_prior(*sde, {32, 2}, g, at::kDouble);
  }
  at::Tensor D(const at::Tensor& x, double sigma) const { return pred.x0(x, sigma); }
};

}  // namespace

TEST_CASE("the step to sigma = 0 is the x0 prediction at the grid's end, one model call",
          "[compat]") {
  EdmCase c;
  const auto times = make_time_grid(GridKind::Karras, *c.k, 9, 80.0, 0.002);
  for (const char* name : {"euler", "heun", "edm-heun", "dpm-2", "dpmpp-2m", "unipc-2",
                           "dpm-solver-2", "euler-ancestral", "dpmpp-2m-sde", "dpmpp-sde"}) {
    INFO(name);
    const SampleResult plain = run(name, {}, c.model, *c.sde, times, c.xT);
    const SampleResult zero = run(name, {}, c.model, *c.sde, times, c.xT, true);
    CHECK(zero.nfe == plain.nfe + 1);
    CHECK(zero.steps == plain.steps + 1);
    CHECK(max_rel_diff(zero.x, c.D(plain.x, 0.002)) < 1e-12);
  }
  // lms takes the step with its own formula; of order 1 that is Euler, whose step to 0 is D.
  SamplerOptions lms1;
  lms1.lms_order = 1;
  const SampleResult e = run("lms", lms1, c.model, *c.sde, times, c.xT);
  const SampleResult z = run("lms", lms1, c.model, *c.sde, times, c.xT, true);
  CHECK(z.nfe == e.nfe + 1);
  CHECK(max_rel_diff(z.x, c.D(e.x, 0.002)) < 1e-12);
  SamplerOptions lms4;
  lms4.lms_rk4_start = false;
  const SampleResult z4 = run("lms", lms4, c.model, *c.sde, times, c.xT, true);
  const SampleResult e4 = run("lms", lms4, c.model, *c.sde, times, c.xT);
  CHECK(max_rel_diff(z4.x, c.D(e4.x, 0.002)) > 1e-6);  // a multistep step, not D
}

TEST_CASE("the step to sigma = 0 is refused where it means nothing", "[compat]") {
  EdmCase c;
  const auto times = make_time_grid(GridKind::Karras, *c.k, 4, 80.0, 0.002);
  std::vector<double> up(times.rbegin(), times.rend());
  CHECK_THROWS_WITH(run("euler", {}, c.model, *c.sde, up, c.xT, true),
                    Catch::Contains("needs decreasing times"));
  SampleSpec spec;
  spec.steps = 1;
  spec.to_zero = true;
  CHECK_THROWS_WITH(spec_grid(*c.sde, spec), Catch::Contains("steps must be >= 2"));
  spec.steps = 5;  // 4 grid steps, then the step to 0
  CHECK(spec_grid(*c.sde, spec).size() == 5);
}

TEST_CASE("k-diffusion's Heun, lms start and DPM-Solver++ 2M on its Karras grid with 0",
          "[compat]") {
  // The reference loops of k-diffusion's sample_heun and sample_dpmpp_2m on
  // get_sigmas_karras(n, 0.002, 80, 7), against --steps n with the k-diffusion preset.
  EdmCase c;
  for (int n : {5, 9, 20}) {
    INFO("n = " << n);
    const std::vector<double> sig = karras_sigmas(n, 0.002, 80.0, 7.0);
    at::Tensor x = c.xT.clone();
    for (size_t i = 0; i + 1 < sig.size(); ++i) {
      const at::Tensor d = (x - c.D(x, sig[i])) / sig[i];
      const double dt = sig[i + 1] - sig[i];
      if (sig[i + 1] == 0.0) {
        x = x + d * dt;
      } else {
        const at::Tensor x2 = x + d * dt;
        const at::Tensor d2 = (x2 - c.D(x2, sig[i + 1])) / sig[i + 1];
        x = x + (d + d2) * (dt / 2.0);
      }
    }
    at::Tensor y = c.xT.clone(), old;
    for (size_t i = 0; i + 1 < sig.size(); ++i) {
      const at::Tensor den = c.D(y, sig[i]);
      const double t = -std::log(sig[i]);
      if (!old.defined() || sig[i + 1] == 0.0) {
        y = sig[i + 1] == 0.0
                ? den
                : (sig[i + 1] / sig[i]) * y - std::expm1(t - (-std::log(sig[i + 1]))) * den;
      } else {
        const double tn = -std::log(sig[i + 1]), h = tn - t;
        const double r = (t + std::log(sig[i - 1])) / h;
        const at::Tensor dd = (1.0 + 1.0 / (2.0 * r)) * den - (1.0 / (2.0 * r)) * old;
        y = (sig[i + 1] / sig[i]) * y - std::expm1(-h) * dd;
      }
      old = den;
    }
    SampleSpec spec;
    spec.steps = n;
    spec.grid = GridKind::Karras;
    spec.x_init = c.xT;
    spec.options = at::kDouble;
    spec.to_zero = compat_to_zero(Compat::KDiffusion);
    const SampleResult heun = sample(*make_sampler("heun"), c.model, *c.sde, spec);
    CHECK(heun.nfe == 2 * n - 1);
    CHECK(max_rel_diff(heun.x, x) < 1e-12);
    const SamplerOptions kd =
        sampler_options_for("dpmpp-2m", compat_sampler_options(Compat::KDiffusion, "dpmpp-2m"));
    CHECK(kd.lower_order_final == LowerOrderFinal::ToZero);
    const SampleResult m2 = sample(*make_sampler("dpmpp-2m", kd), c.model, *c.sde, spec);
    CHECK(m2.nfe == n);
    CHECK(max_rel_diff(m2.x, y) < 1e-12);
    // DPM-Solver's below-10 rule differs on short grids and agrees where it lowers nothing.
    const SampleResult m2d = sample(*make_sampler("dpmpp-2m"), c.model, *c.sde, spec);
    if (n < 10)
      CHECK(max_rel_diff(m2d.x, y) > 1e-6);
    else
      CHECK(max_rel_diff(m2d.x, y) < 1e-12);
    // The lms preset starts with lower orders and costs one call per step, the step to 0 too.
    const SamplerOptions lk =
        sampler_options_for("lms", compat_sampler_options(Compat::KDiffusion, "lms"));
    CHECK_FALSE(lk.lms_rk4_start);
    CHECK(sample(*make_sampler("lms", lk), c.model, *c.sde, spec).nfe == n);
  }
}

TEST_CASE("the official singlestep rule: order schedules, inner nodes, exact budgets", "[compat]") {
  const SDEPtr sde = make_sde("vp-linear");
  const SchedulePtr k = sde->schedule();
  GaussianMixtureModel model(GaussianMixture::ring2d(), k);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor xT = draw_prior(*sde, {16, 2}, g, at::kDouble);
  SamplerOptions off;
  off.singlestep_official = true;
  SECTION("every budget is spent exactly, in the official orders") {
    for (const char* name : {"dpm-solver-1", "dpm-solver-2", "dpm-solver-3", "dpm-solver-fast"})
      for (int N = 1; N <= 13; ++N) {
        INFO(name << " N = " << N);
        const auto s = make_sampler(name, off);
        CHECK(s->steps_for_nfe(N) == N);
        const auto groups = s->grid_groups(N);
        int sum = 0;
        for (int o : groups) sum += o;
        CHECK(sum == N);
        SampleSpec spec;
        spec.steps = N;
        spec.grid = GridKind::UniformT;
        spec.x_init = xT;
        spec.options = at::kDouble;
        const SampleResult r = sample(*s, model, *sde, spec);
        CHECK(r.nfe == N);
        CHECK(r.steps == static_cast<int>(groups.size()));
      }
    CHECK(make_sampler("dpm-solver-2", off)->grid_groups(5) == std::vector<int>{2, 2, 1});
    CHECK(make_sampler("dpm-solver-3", off)->grid_groups(9) == std::vector<int>{3, 3, 2, 1});
    CHECK(make_sampler("dpm-solver-3", off)->grid_groups(10) == std::vector<int>{3, 3, 3, 1});
    CHECK(make_sampler("dpm-solver-3", off)->grid_groups(11) == std::vector<int>{3, 3, 3, 2});
  }
  SECTION("on a uniform-t grid the inner points are uniform in t inside each step") {
    Recording rec(model);
    SampleSpec spec;
    spec.steps = 8;
    spec.grid = GridKind::UniformT;
    spec.x_init = xT;
    spec.options = at::kDouble;
    sample(*make_sampler("dpm-solver-2", off), rec, *sde, spec);
    const auto grid = make_time_grid(GridKind::UniformT, *k, 8, 1.0, 1e-3);
    REQUIRE(rec.times.size() == 8);
    for (size_t i = 0; i < 8; ++i) CHECK(rec.times[i] == Approx(grid[i]).epsilon(1e-12));
    // The first inner point is the t-midpoint of [1, t_2], not the lambda-midpoint.
    CHECK(rec.times[1] == Approx(0.5 * (1.0 + grid[2])).epsilon(1e-12));
    const double lam_mid = 0.5 * (k->lambda(1.0) + k->lambda(grid[2]));
    CHECK(std::abs(k->lambda(rec.times[1]) - lam_mid) > 0.05);
  }
  SECTION("the official DPM-Solver-2 on uniform-t, loop for loop") {
    // dpm_solver_pytorch's sample(steps=N, order=2, method='singlestep',
    // skip_type='time_uniform'): outer points every second node of the (N + 1)-point grid,
    // r1 from the inner node, the noise-prediction second-order update.
    const int N = 7;
    const auto grid = make_time_grid(GridKind::UniformT, *k, N, 1.0, 1e-3);
    const Predictor p(model, k.get());
    at::Tensor x = xT.clone();
    size_t i = 0;
    for (int o : {2, 2, 2, 1}) {
      const double s = grid[i], t = grid[i + static_cast<size_t>(o)];
      const double ls = k->lambda(s), h = k->lambda(t) - ls;
      const at::Tensor e = p.as(Param::Eps, x, s);
      if (o == 1) {
        x = (k->alpha(t) / k->alpha(s)) * x - k->sigma(t) * std::expm1(h) * e;
      } else {
        const double r1 = (k->lambda(grid[i + 1]) - ls) / h;
        const double s1 = k->t_of_lambda(ls + r1 * h);
        const at::Tensor u =
            (k->alpha(s1) / k->alpha(s)) * x - k->sigma(s1) * std::expm1(r1 * h) * e;
        const at::Tensor e1 = p.as(Param::Eps, u, s1);
        x = (k->alpha(t) / k->alpha(s)) * x - k->sigma(t) * std::expm1(h) * e -
            (0.5 / r1) * k->sigma(t) * std::expm1(h) * (e1 - e);
      }
      i += static_cast<size_t>(o);
    }
    SampleSpec spec;
    spec.steps = N;
    spec.grid = GridKind::UniformT;
    spec.x_init = xT;
    spec.options = at::kDouble;
    const SampleResult r = sample(*make_sampler("dpm-solver-2", off), model, *sde, spec);
    CHECK(max_rel_diff(r.x, x) < 1e-12);
    // sdekit's own rule differs: ceil(N/2) uniform-t steps with r1 = 1/2 in lambda.
    SamplerOptions own;
    own.nfe_budget = N;
    spec.steps = make_sampler("dpm-solver-2", own)->steps_for_nfe(N);
    CHECK(max_rel_diff(sample(*make_sampler("dpm-solver-2", own), model, *sde, spec).x, x) > 1e-4);
  }
  SECTION("on a uniform-lambda grid it is DPM-Solver-fast's K steps with fixed ratios") {
    for (int N : {6, 10, 20}) {
      INFO("N = " << N);
      SampleSpec spec;
      spec.grid = GridKind::UniformLambda;
      spec.x_init = xT;
      spec.options = at::kDouble;
      spec.steps = N;
      const SampleResult a = sample(*make_sampler("dpm-solver-fast", off), model, *sde, spec);
      SamplerOptions own;
      own.nfe_budget = N;
      const auto fast = make_sampler("dpm-solver-fast", own);
      spec.steps = fast->steps_for_nfe(N);
      const SampleResult b = sample(*fast, model, *sde, spec);
      CHECK(a.nfe == N);
      CHECK(b.nfe == N);
      CHECK(max_rel_diff(a.x, b.x) < 1e-12);
    }
  }
}

TEST_CASE("adaptive DPM-Solver++ converges with the tolerance, the official controller",
          "[compat]") {
  const sdekit::test::GaussianCase gc = sdekit::test::make_gaussian();
  const GaussianMixture mix = gc.mixture();
  const SDEPtr sde = make_sde("vp-linear");
  const SchedulePtr k = sde->schedule();
  GaussianMixtureModel model(mix, k);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(9);
  const at::Tensor xT = draw_prior(*sde, {64, 4}, g, at::kDouble);
  const at::Tensor exact = gc.flow(xT, *k, 1.0, 1e-3);
  const std::vector<double> ends{1.0, 1e-3};
  for (const char* name : {"dpmpp-12", "dpmpp-23", "dpm-solver-12", "dpm-solver-23"}) {
    INFO(name);
    double prev = HUGE_VAL;
    for (double tol : {1e-3, 1e-5, 1e-7}) {
      SamplerOptions o;
      o.rtol = o.atol = tol;
      const SampleResult r = run(name, o, model, *sde, ends, xT);
      const double err = sdekit::test::rms(r.x - exact);
      INFO("tol " << tol << " error " << err << " NFE " << r.nfe);
      CHECK(err < 50 * tol);
      CHECK(err < prev);
      prev = err;
      const int per = make_sampler(name)->nfe_per_step();
      // The prediction at s is kept across rejections: at most the official count.
      CHECK(r.attempts >= r.steps);
      CHECK(r.nfe <= per * r.attempts);
      CHECK(r.nfe == per * r.attempts - (r.attempts - r.steps));
    }
  }
  // The official controller (no growth cap, the factor in float32) against sdekit's cap: both
  // reach the tolerance; uncapped growth takes no more attempts.
  const SamplerOptions official =
      sampler_options_for("dpmpp-23", compat_sampler_options(Compat::DpmSolver, "dpmpp-23"));
  CHECK(std::isinf(official.max_growth));
  CHECK(official.factor_float32);
  CHECK(official.rtol == 0.05);
  CHECK(official.atol == 0.0078);
  SamplerOptions capped = official;
  capped.max_growth = 5.0;
  capped.factor_float32 = false;
  const SampleResult a = run("dpmpp-23", official, model, *sde, ends, xT);
  const SampleResult b = run("dpmpp-23", capped, model, *sde, ends, xT);
  CHECK(sdekit::test::rms(a.x - exact) < 0.05);
  CHECK(sdekit::test::rms(b.x - exact) < 0.05);
  CHECK(a.attempts <= b.attempts);
  CHECK_THROWS_WITH(make_sampler("dpmpp-12",
                                 [] {
                                   SamplerOptions o;
                                   o.max_growth = 1.0;
                                   return o;
                                 }()),
                    Catch::Contains("max_growth must be > 1"));
}

TEST_CASE("the --compat presets set only the options a sampler takes", "[compat]") {
  CHECK(parse_compat("k-diffusion") == Compat::KDiffusion);
  CHECK(parse_compat("dpm-solver") == Compat::DpmSolver);
  CHECK_THROWS_WITH(parse_compat("comfy"), Catch::Contains("valid: none, k-diffusion"));
  CHECK(compat_sampler_options(Compat::KDiffusion, "euler").empty());
  CHECK(compat_sampler_options(Compat::DpmSolver, "dopri5").empty());  // not its tolerances
  CHECK(compat_sampler_options(Compat::DpmSolver, "dpm-solver-3").at("singlestep-rule") ==
        "official");
  CHECK(compat_sampler_options(Compat::DpmSolver, "dpmpp-3m").at("dpmpp3m-reference") == "true");
  CHECK(compat_to_zero(Compat::KDiffusion));
  CHECK_FALSE(compat_to_zero(Compat::DpmSolver));
  // Every preset value parses for every sampler.
  for (const auto& info : sampler_registry())
    for (Compat c : {Compat::KDiffusion, Compat::DpmSolver})
      CHECK_NOTHROW(sampler_options_for(info.name, compat_sampler_options(c, info.name)));
}

TEST_CASE("the studies take --compat: exact budgets under both presets, the data as reference",
          "[compat]") {
  const std::string dir = "test_compat_out";
  FidTableSpec f;
  f.model = "ring2d";
  f.sde = "edm";
  f.samplers = {"heun", "dpmpp-2m", "lms"};
  f.nfe = {5, 9};
  f.n = 200;
  f.n_ref = 400;
  f.kid_subsets = 2;
  f.kid_subset_size = 100;
  f.compat = "k-diffusion";
  const FidTableReport fr = run_fid_table(f, dir + "/fid", true);
  for (const auto& c : fr.cells) {
    INFO(c.key());
    CHECK(c.failure.empty());
    CHECK(c.nfe == c.target_nfe);  // heun 5 = 2 Heun steps + the step to 0
  }
  CHECK_THAT(fr.reference, Catch::Contains("p(0)"));
  CHECK_THAT(fid_protocol(fr), Catch::Contains("step to sigma = 0"));
  f.compat = "comfy";
  CHECK_THROWS_WITH(validate(f), Catch::Contains("compat") && Catch::Contains("k-diffusion"));

  ConvergeSpec c;
  c.model = "ring2d";
  c.samplers = {"dpm-solver-2", "dpm-solver-3"};
  c.nfe = {7, 10, 11};
  c.grid = "uniform-t";
  c.compat = "dpm-solver";
  const ConvergeReport cr = run_converge(c, dir + "/converge", true);
  for (const auto& cell : cr.cells) {
    INFO(cell.key());
    CHECK(cell.nfe == cell.target_nfe);  // the official rule spends every budget
  }
}
