// Row-keyed randomness (solvers/row_noise.hpp, docs/theory.md section 10.1): the draws are
// standard normal (moments, per coordinate, independence across rows and draws), a row's values
// depend only on (seed, row, draw), and sample_rows gives the same rows bit for bit at any batch
// size and split; the generator's stream refuses to be split.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "models/gaussian_mixture.hpp"
#include "schedules/registry.hpp"
#include "solvers/registry.hpp"
#include "solvers/row_noise.hpp"
#include "solvers/sample.hpp"

using namespace sdekit;

TEST_CASE("row-keyed draws are standard normal, per coordinate and across rows and draws",
          "[row-noise]") {
  const int64_t n = 8192, D = 33;  // odd D: the last value of a row is a lone Box-Muller cosine
  const at::Tensor z = row_normal({n, D}, at::kDouble, 5, 0, 1);
  const double N = double(n * D);
  CHECK(std::abs(z.mean().item<double>()) < 5.0 / std::sqrt(N));
  CHECK(std::abs(z.var().item<double>() - 1.0) < 5.0 * std::sqrt(2.0 / N));
  CHECK(std::abs(z.pow(4).mean().item<double>() - 3.0) < 5.0 * std::sqrt(96.0 / N));
  CHECK(std::abs(z.pow(3).mean().item<double>()) < 5.0 * std::sqrt(15.0 / N));
  // Every coordinate (cosines and sines alike) has variance 1 over the rows.
  const at::Tensor v = z.var(0);
  CHECK(((v - 1.0).abs() < 5.0 * std::sqrt(2.0 / double(n))).all().item<bool>());
  // Neighbouring coordinates (one Box-Muller pair), rows and draws are uncorrelated.
  const double se = 5.0 / std::sqrt(double(n));
  CHECK(std::abs((z.select(1, 0) * z.select(1, 1)).mean().item<double>()) < se);
  CHECK(std::abs((z.narrow(0, 0, n - 1) * z.narrow(0, 1, n - 1)).mean().item<double>()) < 0.2 * se);
  const at::Tensor z2 = row_normal({n, D}, at::kDouble, 5, 0, 2);
  CHECK(std::abs((z * z2).mean().item<double>()) < 5.0 / std::sqrt(N));
  const at::Tensor zs = row_normal({n, D}, at::kDouble, 6, 0, 1);
  CHECK(std::abs((z * zs).mean().item<double>()) < 5.0 / std::sqrt(N));
}

TEST_CASE("a row's draws depend only on (seed, row, draw)", "[row-noise]") {
  const at::Tensor all = row_normal({50, 7}, at::kDouble, 11, 0, 3);
  const at::Tensor part = row_normal({12, 7}, at::kDouble, 11, 20, 3);
  CHECK(at::equal(part, all.narrow(0, 20, 12)));
  // A shorter row is the prefix of a longer one; float32 is the rounded float64 draw.
  const at::Tensor shortr = row_normal({50, 4}, at::kDouble, 11, 0, 3);
  CHECK(at::equal(shortr, all.narrow(1, 0, 4)));
  CHECK(at::equal(row_normal({50, 7}, at::kFloat, 11, 0, 3), all.to(at::kFloat)));
  // Shape [n, ...]: a row is the flattened event.
  CHECK(at::equal(row_normal({50, 7, 1}, at::kDouble, 11, 0, 3).squeeze(2), all));
  CHECK_FALSE(at::equal(row_normal({50, 7}, at::kDouble, 11, 0, 4), all));
  CHECK_FALSE(at::equal(row_normal({50, 7}, at::kDouble, 12, 0, 3), all));
  CHECK(at::isfinite(row_normal({100000, 1}, at::kDouble, 0, 0, 0)).all().item<bool>());
}

TEST_CASE("sample(): x_T is draw 0 of each row, the sampler's k-th draw is draw k",
          "[row-noise][sample]") {
  const SDEPtr sde = make_sde("ve");
  GaussianMixtureModel model(GaussianMixture::ring2d(), sde->schedule());
  SampleSpec spec;
  spec.steps = 12;
  spec.n = 64;
  spec.event_shape = {2};
  spec.seed = 17;
  spec.options = at::kDouble;
  const auto em = make_sampler("euler-maruyama");
  const SampleResult a = sample(*em, model, *sde, spec);
  SampleRequest req;
  req.model = &model;
  req.sde = sde.get();
  req.times = spec_grid(*sde, spec);
  // VE with sigma_max = 50: x_T ~ N(0, (1 + 50^2) I) (unit-variance data plus the kernel).
  REQUIRE(sde->prior_std() == Approx(std::sqrt(1.0 + 50.0 * 50.0)).epsilon(1e-12));
  req.x_init = row_normal({64, 2}, at::kDouble, 17, 0, 0) * sde->prior_std();
  req.noise = NoiseReplay::rows(17, 0);
  const SampleResult b = em->run(req);
  CHECK(at::equal(a.x, b.x));
  CHECK(req.noise->used() == 12);
}

TEST_CASE("sample_rows: the same rows bit for bit at any batch size and split",
          "[row-noise][sample]") {
  const SDEPtr sde = make_sde("vp-linear");
  GaussianMixtureModel model(GaussianMixture::ring2d(), sde->schedule());
  for (const char* name : {"euler-maruyama", "ancestral", "dpmpp-2m", "sde-dpmpp-2m"}) {
    INFO(name);
    const auto s = make_sampler(name);
    SampleSpec spec;
    spec.steps = 10;
    spec.n = 64;
    spec.event_shape = {2};
    spec.seed = 3;
    spec.options = at::kDouble;
    const at::Tensor whole = sample(*s, model, *sde, spec).x;
    CHECK(at::equal(sample_rows(*s, model, *sde, spec, 0, 64, 7).x, whole));
    CHECK(at::equal(sample_rows(*s, model, *sde, spec, 0, 64, 64).x, whole));
    const at::Tensor a = sample_rows(*s, model, *sde, spec, 0, 21).x,
                     b = sample_rows(*s, model, *sde, spec, 21, 43, 5).x,
                     c = sample_rows(*s, model, *sde, spec, 43, 64).x;
    CHECK(at::equal(at::cat({a, b, c}, 0), whole));
    // float32 too.
    spec.options = at::kFloat;
    const at::Tensor f = sample(*s, model, *sde, spec).x;
    CHECK(at::equal(sample_rows(*s, model, *sde, spec, 0, 64, 7).x, f));
  }
}

TEST_CASE("sample_rows: batch-invariant in 64 dimensions too (the mixture's tensor path)",
          "[row-noise][sample]") {
  const SDEPtr sde = make_sde("vp-linear");
  GaussianMixtureModel model(GaussianMixture::gmm64(), sde->schedule());
  for (const char* name : {"dpmpp-2m", "euler-maruyama"}) {
    INFO(name);
    const auto s = make_sampler(name);
    SampleSpec spec;
    spec.steps = 6;
    spec.n = 40;
    spec.event_shape = {64};
    spec.seed = 9;
    spec.options = at::kDouble;
    const at::Tensor whole = sample(*s, model, *sde, spec).x;
    CHECK(at::equal(sample_rows(*s, model, *sde, spec, 0, 40, 7).x, whole));
    CHECK(at::equal(sample_rows(*s, model, *sde, spec, 0, 40, 1).x, whole));
    CHECK(at::equal(at::cat({sample_rows(*s, model, *sde, spec, 0, 13).x,
                             sample_rows(*s, model, *sde, spec, 13, 40).x}),
                    whole));
  }
}

TEST_CASE("sample_rows: the generator's stream and a Brownian path are not split",
          "[row-noise][errors]") {
  const SDEPtr sde = make_sde("vp-linear");
  GaussianMixtureModel model(GaussianMixture::ring2d(), sde->schedule());
  const auto em = make_sampler("euler-maruyama");
  SampleSpec spec;
  spec.steps = 4;
  spec.n = 16;
  spec.event_shape = {2};
  spec.rng = RngKind::Generator;
  CHECK_NOTHROW(sample_rows(*em, model, *sde, spec, 0, 16));
  CHECK_THROWS_WITH(sample_rows(*em, model, *sde, spec, 0, 16, 4), Catch::Contains("--rng rows"));
  CHECK_THROWS_WITH(sample_rows(*em, model, *sde, spec, 4, 16), Catch::Contains("--rng rows"));
  CHECK_THROWS_WITH(sample_rows(*em, model, *sde, spec, 0, 17), Catch::Contains("rows [0, 17)"));
  CHECK_THROWS_WITH(parse_rng("philox"), Catch::Contains("rows | generator"));
}
