// Consistency models and distillation: the boundary parameterization, the exact consistency
// function (an accurate PF-ODE solve) with the consistency sampler, consistency distillation and
// progressive distillation from the committed two-moons teacher, and exact resume of both.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "datasets/toy.hpp"
#include "distill/distill.hpp"
#include "experiments/frechet.hpp"
#include "models/consistency.hpp"
#include "models/gaussian_mixture.hpp"
#include "network_support.hpp"
#include "networks/consistency_model.hpp"
#include "networks/loader.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/consistency.hpp"
#include "solvers/noise.hpp"
#include "solvers/reference.hpp"
#include "solvers/registry.hpp"
#include "solvers/sample.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using namespace sdekit;
using sdekit::test::same_parameters;

namespace {

fs::path scratch(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("sdekit_test_distill_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path p = dir / name;
  fs::remove_all(p);
  return p;
}

// The committed two-moons teacher (data/toy/README.md): an eps-MLP, width 64, depth 2.
std::string toy_teacher() {
  return "net:" + (fs::path(sdekit_data_dir()) / "toy" / "two_moons_mlp.pt").string();
}

SampleRequest request(ScoreModel& model, const SDE& sde, std::vector<double> times,
                      const at::Tensor& xT, at::Generator& g) {
  SampleRequest r;
  r.model = &model;
  r.sde = &sde;
  r.times = std::move(times);
  r.x_init = xT;
  r.generator = g;
  return r;
}

// Frechet distance of samples x [n, 2] to exact two-moons samples at t_end (alpha x0 + sigma z).
double moons_fd(const at::Tensor& x, const NoiseSchedule& k, double t_end) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(77);
  const at::Tensor x0 = toy_dataset("two-moons", 20000, g).to(at::kDouble);
  const at::Tensor ref =
      x0 * k.alpha(t_end) + at::randn(x0.sizes(), g, at::kDouble) * k.sigma(t_end);
  GaussianStats a, b;
  a.add(x.to(at::kDouble));
  b.add(ref);
  return frechet_distance(a, b);
}

ConsistencyDistillConfig toy_cd(int64_t steps) {
  ConsistencyDistillConfig c;
  c.teacher = toy_teacher();
  c.data = "two-moons";
  c.steps = steps;
  c.batch = 256;
  c.lr = 1e-4;
  c.log_every = 100;
  c.checkpoint_every = 10000;
  return c;
}

ProgressiveDistillConfig toy_pd(int64_t teacher_steps, int64_t final_steps, int64_t per_round) {
  ProgressiveDistillConfig c;
  c.teacher = toy_teacher();
  c.data = "two-moons";
  c.teacher_steps = teacher_steps;
  c.final_steps = final_steps;
  c.steps_per_round = per_round;
  c.batch = 256;
  c.lr = 1e-4;
  c.log_every = 100;
  c.checkpoint_every = 10000;
  return c;
}

}  // namespace

TEST_CASE("the consistency boundary holds exactly for the learned parameterization",
          "[distill][consistency]") {
  // f(x, t_end) must equal x bit for bit, whatever the network returns, under schedules with
  // alpha != 1 (vp-linear, vp-cosine) and alpha = 1 (ve, edm); for alpha = 1 the coefficients
  // are the paper's c_skip and c_out in sigma.
  for (const char* sde_name : {"vp-linear", "vp-cosine", "ve", "edm"}) {
    INFO(sde_name);
    const SDEPtr sde = make_sde(sde_name);
    const double t_end = sde->default_t_end();
    NetConfig nc;
    nc.width = 32;
    nc.depth = 1;
    auto net = std::make_shared<Network>(nc, 5);
    // Large weights, so that F is far from zero at t_end.
    for (auto& p : net->parameters()) {
      c10::NoGradGuard ng;
      p.mul_(7.0);
    }
    ConsistencyModel cm(net, sde_name, t_end);
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(1);
    const at::Tensor x = at::randn({64, 2}, g, at::kFloat) * 3.0;
    const at::Tensor F = net->predict(x, at::full({64}, t_end, at::kDouble));
    REQUIRE(F.abs().max().item<double>() > 1.0);
    CHECK(at::equal(cm.predict(x, at::full({64}, t_end, at::kDouble)), x));
    CHECK(at::equal(cm.predict_at(x, t_end), x));
    // Per-row times with some rows at t_end: exactly x there.
    at::Tensor t = at::full({64}, 0.5 * sde->domain().hi, at::kDouble);
    t.narrow(0, 0, 10).fill_(t_end);
    const at::Tensor f = cm.predict(x, t);
    CHECK(at::equal(f.narrow(0, 0, 10), x.narrow(0, 0, 10)));
    CHECK_FALSE(at::equal(f.narrow(0, 10, 54), x.narrow(0, 10, 54)));

    const ConsistencyBoundary& b = cm.boundary();
    const auto c0 = b.at(t_end);
    CHECK(c0.x_coeff == 1.0);
    CHECK(c0.f_coeff == 0.0);
    const double tm = 0.5 * sde->domain().hi;
    const auto c = b.at(tm);
    if (std::string(sde_name) == "ve" || std::string(sde_name) == "edm") {
      const double s = sde->schedule()->sigma(tm), se = sde->schedule()->sigma(t_end), sd = 0.5;
      CHECK(c.x_coeff == Approx(sd * sd / ((s - se) * (s - se) + sd * sd)).epsilon(1e-12));
      CHECK(c.f_coeff == Approx(sd * (s - se) / std::sqrt(sd * sd + s * s)).epsilon(1e-12));
    }
    CHECK(c.x_coeff < 1.0);
    CHECK(c.f_coeff > 0.0);
  }
}

TEST_CASE("one consistency step of the exact consistency function lands on the ODE solution",
          "[distill][consistency]") {
  // A 3-d Gaussian under vp-linear has a closed-form PF-ODE flow map (tests/support.hpp). The
  // exact consistency function (dopri5 at 1e-9) at T, taken in one step of the consistency
  // sampler, must match it within 1e-6; f(x, t_end) = x.
  const auto gc = test::random_gaussian(3, 11);
  const SDEPtr sde = make_sde("vp-linear");
  const SchedulePtr k = sde->schedule();
  const double T = sde->domain().hi, t_end = sde->default_t_end();
  auto model = std::make_shared<GaussianMixtureModel>(gc.mixture(), k);
  ExactConsistency f(model, sde, t_end, 1e-9, 1e-9);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(2);
  const at::Tensor xT = at::randn({128, 3}, g, at::kDouble);
  const auto sampler = make_sampler("consistency");
  const SampleResult r = sampler->run(request(f, *sde, {T, t_end}, xT, g));
  CHECK(r.nfe == 1);
  const at::Tensor exact = gc.flow(xT, *k, T, t_end);
  INFO("max error " << (r.x - exact).abs().max().item<double>());
  CHECK((r.x - exact).abs().max().item<double>() < 1e-6);
  CHECK(f.solver_nfe() > 10);
  CHECK(at::equal(f.predict_at(xT, t_end), xT));
  // Per-row times: rows at T and at T/2 are solved as two groups, each like a whole batch.
  at::Tensor t = at::full({128}, T, at::kDouble);
  t.narrow(0, 64, 64).fill_(0.5 * T);
  const at::Tensor mixed = f.predict(xT, t);
  CHECK((mixed.narrow(0, 0, 64) - exact.narrow(0, 0, 64)).abs().max().item<double>() < 1e-6);
  const at::Tensor half = gc.flow(xT.narrow(0, 64, 64), *k, 0.5 * T, t_end);
  CHECK((mixed.narrow(0, 64, 64) - half).abs().max().item<double>() < 1e-6);
}

TEST_CASE(
    "multistep consistency sampling with the exact consistency function reproduces the "
    "mixture's moments",
    "[distill][consistency]") {
  // ring2d under vp-linear, 4000 samples, 1, 2 and 4 consistency steps on the Karras grid (rho
  // 7). Every step's output is an exact PF-ODE end point of a point distributed as p(t_i) (up to
  // the solver's 1e-7 tolerance), so the samples have the exact moments of p(t_end): mean and
  // covariance within 4.5 standard errors (estimated from the samples) plus 0.005.
  const SDEPtr sde = make_sde("vp-linear");
  const SchedulePtr k = sde->schedule();
  const double T = sde->domain().hi, t_end = sde->default_t_end();
  const GaussianMixture mix = GaussianMixture::ring2d();
  auto model = std::make_shared<GaussianMixtureModel>(mix, k);
  ExactConsistency f(model, sde, t_end, 1e-7, 1e-7);
  const auto sampler = make_sampler("consistency");
  for (int steps : {1, 2, 4}) {
    INFO(steps << " steps");
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(20 + steps);
    const at::Tensor xT = draw_prior(*sde, {4000, 2}, g, at::kDouble);
    const auto times = make_time_grid(GridKind::Karras, *k, steps, T, t_end);
    const SampleResult r = sampler->run(request(f, *sde, times, xT, g));
    CHECK(r.nfe == steps);
    CHECK(r.steps == steps);
    test::check_moments(r.x, mix.mean(k->alpha(t_end)),
                        mix.covariance(k->alpha(t_end), k->sigma(t_end)), 4.5, 0.005);
  }
}

TEST_CASE("the consistency sampler and consistency models refuse the wrong partner",
          "[distill][consistency]") {
  const SDEPtr sde = make_sde("vp-linear");
  const SchedulePtr k = sde->schedule();
  const double T = sde->domain().hi, t_end = sde->default_t_end();
  auto model = std::make_shared<GaussianMixtureModel>(GaussianMixture::ring2d(), k);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
  const at::Tensor xT = at::randn({8, 2}, g, at::kDouble);
  // A score model under the consistency sampler.
  CHECK_THROWS_WITH(make_sampler("consistency")->run(request(*model, *sde, {T, t_end}, xT, g)),
                    Catch::Contains("is not a consistency function"));
  // A consistency function under an integrator.
  ExactConsistency f(model, sde, t_end);
  CHECK_THROWS_WITH(make_sampler("ddim")->run(request(f, *sde, {T, t_end}, xT, g)),
                    Catch::Contains("sample it with the 'consistency' sampler"));
  // A grid that does not end at the model's t_end.
  CHECK_THROWS_WITH(make_sampler("consistency")->run(request(f, *sde, {T, 0.01}, xT, g)),
                    Catch::Contains("t_end = 0.001"));
  // A plain network file is not a consistency model, and a consistency model keeps its SDE.
  const fs::path dir = scratch("refuse");
  fs::create_directories(dir);
  NetConfig nc;
  nc.width = 16;
  nc.depth = 1;
  auto net = std::make_shared<Network>(nc, 1);
  net->save((dir / "net.pt").string());
  CHECK_THROWS_WITH(ConsistencyModel::load((dir / "net.pt").string()),
                    Catch::Contains("is not a consistency model"));
  ConsistencyModel(net, "vp-linear", t_end).save((dir / "cm.pt").string());
  CHECK_THROWS_WITH(load_model("cm:" + (dir / "cm.pt").string(), make_sde("ve")->schedule()),
                    Catch::Contains("--sde vp-linear"));
  const LoadedModel lm = load_model("cm:" + (dir / "cm.pt").string(), k);
  REQUIRE(lm.model->consistency_end());
  CHECK(*lm.model->consistency_end() == t_end);
}

TEST_CASE(
    "a distilled consistency model at 2 steps is within a factor 3 of its teacher's "
    "50-NFE Frechet distance on two moons",
    "[distill][consistency][train]") {
  // Consistency distillation (Heun teacher steps, N = 18, L2, mu = 0.95, lr 1e-4, batch 256)
  // for 1500 steps from the committed two-moons teacher, starting from its weights. 2000 samples
  // from one x_T: the teacher with DPM-Solver++ 2M at 50 NFE and the consistency model at 2 NFE
  // (Karras grid), each against 20000 exact two-moons samples at t_end in the data-space
  // Frechet distance. Required: FD(CM, 2 steps) <= 3 FD(teacher, 50 NFE) + 0.005 (the floor of
  // 2000 samples is about 0.002). The one-step CM must also beat the teacher's DDIM at 2 NFE.
  const fs::path dir = scratch("cd");
  const DistillResult r = distill_consistency(toy_cd(1500), dir.string(), false);
  CHECK(r.steps == 1500);
  REQUIRE(fs::exists(dir / "model.pt"));
  CHECK(fs::exists(dir / "distill.json"));
  CHECK(r.loss_log.back().second < r.loss_log.front().second);

  const SDEPtr sde = make_sde("vp-linear");
  const SchedulePtr k = sde->schedule();
  const double t_end = sde->default_t_end();
  const LoadedModel teacher = load_model(toy_teacher(), k);
  const LoadedModel cm = load_model("cm:" + (dir / "model.pt").string(), k);
  SampleSpec spec;
  spec.n = 2000;
  spec.event_shape = {2};
  spec.seed = 4;
  spec.steps = 50;
  const double fd_teacher =
      moons_fd(sample(*make_sampler("dpmpp-2m"), *teacher.model, *sde, spec).x, *k, t_end);
  spec.steps = 2;
  const double fd_ddim2 =
      moons_fd(sample(*make_sampler("ddim"), *teacher.model, *sde, spec).x, *k, t_end);
  spec.grid = GridKind::Karras;
  const SampleResult two = sample(*make_sampler("consistency"), *cm.model, *sde, spec);
  CHECK(two.nfe == 2);
  const double fd_cm2 = moons_fd(two.x, *k, t_end);
  spec.steps = 1;
  const double fd_cm1 =
      moons_fd(sample(*make_sampler("consistency"), *cm.model, *sde, spec).x, *k, t_end);
  INFO("FD teacher 50 NFE " << fd_teacher << ", teacher DDIM 2 NFE " << fd_ddim2 << ", CM 2 steps "
                            << fd_cm2 << ", CM 1 step " << fd_cm1);
  CHECK(fd_cm2 <= 3.0 * fd_teacher + 0.005);
  CHECK(fd_cm1 < fd_ddim2);
}

TEST_CASE(
    "a progressive-distillation student at N steps is closer to the teacher's ODE "
    "solution than the teacher's DDIM at N steps",
    "[distill][progressive][train]") {
  // Two rounds (16 -> 8 -> 4 DDIM steps, 600 steps each, v-students from the teacher's weights,
  // uniform-t grid). From one x_T of 2000 rows: the teacher's PF-ODE solution (dopri5 at 1e-6, far
  // below the errors compared) and, against it, the RMS error of the 4-step student (DDIM, 4 steps)
  // and of the teacher's own DDIM at 4 steps. Required: the student's error below 0.75 of the
  // teacher's DDIM error (measured 0.214 against 0.428).
  const fs::path dir = scratch("pd");
  const ProgressiveResult r = distill_progressive(toy_pd(16, 4, 600), dir.string(), false);
  REQUIRE(r.rounds.size() == 2);
  CHECK(r.rounds[0].student_steps == 8);
  CHECK(r.rounds[1].student_steps == 4);
  CHECK(fs::exists(dir / "student_8.pt"));
  CHECK(fs::exists(dir / "student_4.pt"));
  CHECK(fs::exists(dir / "progressive.json"));

  const SDEPtr sde = make_sde("vp-linear");
  const SchedulePtr k = sde->schedule();
  const double T = sde->domain().hi, t_end = sde->default_t_end();
  const LoadedModel teacher = load_model(toy_teacher(), k);
  const LoadedModel student = load_model("net:" + (dir / "student_4.pt").string(), k);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor xT = at::randn({2000, 2}, g, at::kFloat);
  const at::Tensor ode = reference_solve(*teacher.model, *sde, xT, T, t_end, 1e-6, 1e-6).x;
  const auto grid = make_time_grid(GridKind::UniformT, *k, 4, T, t_end);
  const auto ddim = make_sampler("ddim");
  const at::Tensor xs = ddim->run(request(*student.model, *sde, grid, xT, g)).x.to(at::kDouble);
  const at::Tensor xt = ddim->run(request(*teacher.model, *sde, grid, xT, g)).x.to(at::kDouble);
  const double e_student = test::rms(xs - ode), e_teacher = test::rms(xt - ode);
  INFO("RMS error against the teacher's ODE solution: student " << e_student << ", teacher DDIM "
                                                                << e_teacher);
  CHECK(e_student < 0.75 * e_teacher);
}

TEST_CASE("resumed distillations reproduce the uninterrupted parameters exactly",
          "[distill][train]") {
  SECTION("consistency distillation") {
    const ConsistencyDistillConfig c = toy_cd(12);
    const fs::path a = scratch("cd_whole"), b = scratch("cd_parts");
    distill_consistency(c, a.string(), false);
    distill_consistency(c, b.string(), false, {}, 5);
    CHECK_FALSE(fs::exists(b / "model.pt"));
    distill_consistency(c, b.string(), true, {}, 4);
    const DistillResult rb = distill_consistency(c, b.string(), true);
    CHECK(rb.resumed_from == 9);
    const auto ma = ConsistencyModel::load((a / "model.pt").string());
    const auto mb = ConsistencyModel::load((b / "model.pt").string());
    CHECK(same_parameters(ma->network(), mb->network()));
    // Another config is refused, naming the field.
    ConsistencyDistillConfig other = c;
    other.N = 10;
    CHECK_THROWS_WITH(distill_consistency(other, b.string(), true), Catch::Contains("N:"));
  }
  SECTION("progressive distillation, across a round boundary") {
    const ProgressiveDistillConfig c = toy_pd(4, 1, 6);  // rounds: 2 and 1 steps, 6 steps each
    const fs::path a = scratch("pd_whole"), b = scratch("pd_parts");
    distill_progressive(c, a.string(), false);
    distill_progressive(c, b.string(), false, {}, 4);
    CHECK_FALSE(fs::exists(b / "student_2.pt"));
    distill_progressive(c, b.string(), true, {}, 2);  // ends the first round exactly
    CHECK(fs::exists(b / "student_2.pt"));
    CHECK_FALSE(fs::exists(b / "student_1.pt"));
    distill_progressive(c, b.string(), true, {}, 3);
    distill_progressive(c, b.string(), true);
    for (const char* f : {"student_2.pt", "student_1.pt"}) {
      INFO(f);
      CHECK(same_parameters(*Network::load((a / f).string()), *Network::load((b / f).string())));
    }
  }
}

TEST_CASE("distillation configs name the bad field", "[distill]") {
  ConsistencyDistillConfig c = toy_cd(10);
  c.N = 1;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("N must be >= 2"));
  c = toy_cd(10);
  c.solver = "rk4";
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("solver must be euler or heun"));
  c = toy_cd(10);
  c.distance = "lpips";
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("distance must be l2 or pseudo-huber"));
  c = toy_cd(10);
  c.teacher = "net:/nonexistent/model.pt";
  CHECK_THROWS_WITH(distill_consistency(c, scratch("bad").string(), false),
                    Catch::Contains("does not exist"));
  ProgressiveDistillConfig p = toy_pd(12, 1, 10);
  CHECK_THROWS_WITH(p.validate(), Catch::Contains("power of 2"));
  p = toy_pd(8, 1, 10);
  p.grid = "no-such-grid";
  CHECK_THROWS_WITH(p.validate(), Catch::Contains("no-such-grid"));
  p = toy_pd(8, 1, 10);
  p.data = "fashion-mnist";
  CHECK_THROWS(distill_progressive(p, scratch("bad2").string(), false));
}
