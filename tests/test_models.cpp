// Tests for models/: parameterization conversions, the analytic Gaussian mixture (density,
// score, moments, sampling, JSON input, built-ins), the mixture score model, CountingModel and
// Predictor. Every expected value is a closed form (docs/theory.md sections 1 and 3) or an
// independent computation written here.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "models/builtin.hpp"
#include "models/gaussian_mixture.hpp"
#include "models/mixture_kernel.hpp"
#include "models/param.hpp"
#include "models/predictor.hpp"
#include "models/score_model.hpp"
#include "schedules/registry.hpp"

using namespace sdekit;
namespace fs = std::filesystem;

namespace {

constexpr double kPi = 3.14159265358979323846;

at::Generator make_gen(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

at::Tensor randn_d(at::IntArrayRef shape, uint64_t seed) {
  return at::randn(shape, make_gen(seed), at::kDouble);
}

double max_abs(const at::Tensor& t) {
  return t.abs().max().item<double>();
}

// max |a - b| / max |b|: the error relative to the largest entry of the reference.
double rel_err(const at::Tensor& a, const at::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  const at::Tensor ad = a.detach().to(at::kDouble), bd = b.detach().to(at::kDouble);
  return max_abs(ad - bd) / std::max(max_abs(bd), 1e-300);
}

bool has(const std::string& s, const std::string& sub) {
  return s.find(sub) != std::string::npos;
}

// Runs f, which must throw std::invalid_argument, and returns its message.
template <class F>
std::string invalid_argument_message(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  FAIL("expected std::invalid_argument");
  return {};
}

// The true value of every parameterization at x = alpha x0 + sigma eps (docs/theory.md section 3).
// A is double (one alpha, sigma) or an at::Tensor broadcastable against x (per row).
template <class A>
std::map<Param, at::Tensor> true_params(const at::Tensor& x0, const at::Tensor& eps, const A& alpha,
                                        const A& sigma) {
  std::map<Param, at::Tensor> v;
  v[Param::Eps] = eps;
  v[Param::X0] = x0;
  v[Param::V] = alpha * eps - sigma * x0;
  v[Param::Score] = -eps / sigma;
  v[Param::Denoiser] = x0;
  v[Param::Flow] = eps - x0;
  return v;
}

struct AlphaSigma {
  double alpha, sigma;
};

// VP pairs (alpha^2 + sigma^2 = 1) and non-VP ones (VE, sub-VP-like, arbitrary).
const std::vector<AlphaSigma>& alpha_sigma_pairs() {
  static const std::vector<AlphaSigma> p = {
      {0.8, 0.6},   {0.995, std::sqrt(1 - 0.995 * 0.995)}, {0.05, std::sqrt(1 - 0.05 * 0.05)},
      {1.0, 5.0},      // VE
      {1.0, 0.01},     // VE / EDM, nearly clean
      {0.7, 0.2},      // sub-VP-like: alpha^2 + sigma^2 < 1
      {0.3, 2.0},      // alpha^2 + sigma^2 > 1
      {2.0, 0.5},      // alpha > 1
      {0.75, 0.25},    // rectified flow: alpha + sigma = 1
      {1e-3, 0.999}};  // rectified flow near t = 1
  return p;
}

// A small 3-D mixture with full (non-diagonal) covariances.
GaussianMixture tri3() {
  at::Tensor w = at::tensor({0.2, 0.5, 0.3}, at::kDouble);
  at::Tensor mu =
      at::tensor({0.0, 0.0, 0.0, 2.0, -1.0, 0.5, -1.5, 1.0, 2.0}, at::kDouble).view({3, 3});
  // Strictly diagonally dominant with a positive diagonal, hence SPD.
  at::Tensor C = at::tensor({1.0, 0.3,   -0.2, 0.3,   0.5, 0.1,  -0.2, 0.1,  0.8,  //
                             0.2, -0.15, 0.0,  -0.15, 0.3, 0.05, 0.0,  0.05, 0.1,  //
                             2.0, 0.9,   0.5,  0.9,   1.0, 0.0,  0.5,  0.0,  0.7},
                            at::kDouble)
                     .view({3, 3, 3});
  return GaussianMixture(w, mu, C, "tri3");
}

// Points at which to evaluate p_t: samples of p_t plus a few wide random points.
at::Tensor eval_points(const GaussianMixture& m, double alpha, double sigma, uint64_t seed) {
  at::Tensor on = m.sample(12, alpha, sigma, make_gen(seed));
  at::Tensor wide = 3.0 * randn_d({4, m.dim()}, seed + 1000);
  return at::cat({on, wide}, 0);
}

// Independent log N(x; m, S) for a 2-D Gaussian with S = [[a, b], [b, d]].
double log_normal_2d(double x1, double x2, double m1, double m2, double a, double b, double d) {
  const double det = a * d - b * b;
  const double y1 = x1 - m1, y2 = x2 - m2;
  const double q = (d * y1 * y1 - 2 * b * y1 * y2 + a * y2 * y2) / det;
  return -0.5 * q - 0.5 * std::log(det) - std::log(2 * kPi);
}

// A temporary directory removed at the end of the test case.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("sdekit_test_models_" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    const fs::path p = path / name;
    std::ofstream out(p);
    out << text;
    return p.string();
  }
};

}  // namespace

// -------------------------------------------------------------------------------------------
// 1. Parameterizations

TEST_CASE("param names round-trip and unknown names list the valid ones", "[models][param]") {
  const std::vector<std::pair<Param, std::string>> expected = {
      {Param::Eps, "eps"},           {Param::X0, "x0"},    {Param::V, "v"}, {Param::Score, "score"},
      {Param::Denoiser, "denoiser"}, {Param::Flow, "flow"}};
  REQUIRE(all_params().size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    CHECK(all_params()[i] == expected[i].first);
    CHECK(param_name(expected[i].first) == expected[i].second);
    CHECK(parse_param(expected[i].second) == expected[i].first);
  }
  for (Param p : all_params()) CHECK(parse_param(param_name(p)) == p);

  const std::string msg = invalid_argument_message([] { parse_param("epsilon"); });
  CHECK(has(msg, "epsilon"));
  for (const auto& e : expected) CHECK(has(msg, e.second));
  CHECK_THROWS_AS(parse_param(""), std::invalid_argument);
  CHECK_THROWS_AS(parse_param("EPS"), std::invalid_argument);
}

TEST_CASE("convert (scalar alpha, sigma) maps every true parameterization to every other",
          "[models][param]") {
  // Any shape works with scalar alpha and sigma: use an image-like [n, c, h] batch.
  const at::Tensor x0 = randn_d({5, 3, 4}, 11);
  const at::Tensor eps = randn_d({5, 3, 4}, 12);
  for (const auto& as : alpha_sigma_pairs()) {
    CAPTURE(as.alpha, as.sigma);
    const at::Tensor x = as.alpha * x0 + as.sigma * eps;
    const auto truth = true_params(x0, eps, as.alpha, as.sigma);
    for (Param from : all_params()) {
      for (Param to : all_params()) {
        CAPTURE(param_name(from), param_name(to));
        const at::Tensor got = convert(truth.at(from), from, to, x, as.alpha, as.sigma);
        CHECK(rel_err(got, truth.at(to)) < 1e-12);
      }
    }
    // EDM / VE in sigma-space: with alpha = 1 the denoiser is D = x + sigma^2 score.
    if (as.alpha == 1.0) {
      const at::Tensor D =
          convert(truth.at(Param::Score), Param::Score, Param::Denoiser, x, 1.0, as.sigma);
      CHECK(rel_err(D, x + as.sigma * as.sigma * truth.at(Param::Score)) < 1e-12);
    }
  }
}

TEST_CASE("convert round trips P -> Q -> P return the prediction", "[models][param]") {
  const at::Tensor x0 = randn_d({6, 5}, 21);
  const at::Tensor eps = randn_d({6, 5}, 22);
  uint64_t seed = 100;
  for (const auto& as : alpha_sigma_pairs()) {
    CAPTURE(as.alpha, as.sigma);
    const at::Tensor x = as.alpha * x0 + as.sigma * eps;
    const auto truth = true_params(x0, eps, as.alpha, as.sigma);
    for (Param p : all_params()) {
      // A model's prediction is not exactly consistent with x: perturb the true value by 10%
      // of its scale, so the round trip must undo the affine map, not just reproduce the truth.
      const at::Tensor pred = truth.at(p) + 0.1 * max_abs(truth.at(p)) * randn_d(x.sizes(), ++seed);
      for (Param q : all_params()) {
        CAPTURE(param_name(p), param_name(q));
        const at::Tensor mid = convert(pred, p, q, x, as.alpha, as.sigma);
        const at::Tensor back = convert(mid, q, p, x, as.alpha, as.sigma);
        CHECK(rel_err(back, pred) < 1e-12);
      }
    }
  }
}

TEST_CASE("convert (per-row alpha, sigma tensors) matches the true values row by row",
          "[models][param]") {
  const auto& pairs = alpha_sigma_pairs();
  const auto n = static_cast<int64_t>(pairs.size());
  std::vector<double> av, sv;
  for (const auto& p : pairs) {
    av.push_back(p.alpha);
    sv.push_back(p.sigma);
  }
  const at::Tensor alpha = at::tensor(av, at::kDouble).view({n, 1});
  const at::Tensor sigma = at::tensor(sv, at::kDouble).view({n, 1});
  const at::Tensor x0 = randn_d({n, 7}, 31);
  const at::Tensor eps = randn_d({n, 7}, 32);
  const at::Tensor x = alpha * x0 + sigma * eps;
  const auto truth = true_params(x0, eps, alpha, sigma);
  for (Param from : all_params()) {
    for (Param to : all_params()) {
      CAPTURE(param_name(from), param_name(to));
      const at::Tensor got = convert(truth.at(from), from, to, x, alpha, sigma);
      REQUIRE(got.sizes() == x.sizes());
      for (int64_t i = 0; i < n; ++i) {
        CAPTURE(i);
        // Each row against its own truth and against the scalar overload on that row.
        CHECK(rel_err(got[i], truth.at(to)[i]) < 1e-12);
        const at::Tensor row = convert(truth.at(from).slice(0, i, i + 1), from, to,
                                       x.slice(0, i, i + 1), av[i], sv[i]);
        CHECK(rel_err(got.slice(0, i, i + 1), row) < 1e-12);
      }
      // Round trip with per-row coefficients.
      const at::Tensor back = convert(got, to, from, x, alpha, sigma);
      CHECK(rel_err(back, truth.at(from)) < 1e-12);
    }
  }
}

// -------------------------------------------------------------------------------------------
// 2. Gaussian mixture density and score

TEST_CASE("mixture score equals the autograd gradient of log_prob", "[models][mixture]") {
  const std::vector<GaussianMixture> mixtures = {GaussianMixture::ring2d(),
                                                 GaussianMixture::gmm64(), tri3()};
  const std::vector<AlphaSigma> pts = {
      {1.0, 0.0}, {1.0, 0.05}, {0.8, 0.6}, {0.3, std::sqrt(1 - 0.09)}, {1.0, 5.0}, {0.5, 0.2}};
  uint64_t seed = 200;
  for (const auto& m : mixtures) {
    for (const auto& as : pts) {
      CAPTURE(m.name(), as.alpha, as.sigma);
      const at::Tensor x = eval_points(m, as.alpha, as.sigma, ++seed);
      at::Tensor xr = x.clone().requires_grad_(true);
      m.log_prob(xr, as.alpha, as.sigma).sum().backward();
      const at::Tensor grad = xr.grad().detach();
      const at::Tensor s = m.score(x, as.alpha, as.sigma);
      REQUIRE(s.sizes() == x.sizes());
      REQUIRE(s.scalar_type() == at::kDouble);
      CHECK(rel_err(s, grad) < 1e-10);

      // The same through the per-row overload.
      const int64_t n = x.size(0);
      const at::Tensor a = at::full({n}, as.alpha, at::kDouble);
      const at::Tensor sg = at::full({n}, as.sigma, at::kDouble);
      at::Tensor xr2 = x.clone().requires_grad_(true);
      m.log_prob(xr2, a, sg).sum().backward();
      CHECK(rel_err(m.score(x, a, sg), xr2.grad()) < 1e-10);
    }
  }
}

TEST_CASE("mixture log_prob equals the closed-form noised Gaussian density in 2-D",
          "[models][mixture]") {
  // Component 1: mean (0.5, -1), C = [[1, 0.3], [0.3, 0.5]]; component 2: mean (-1, 2),
  // C = [[0.2, -0.1], [-0.1, 0.4]]. Noised covariance alpha^2 C + sigma^2 I.
  struct Comp {
    double m1, m2, a, b, d;
  };
  const Comp c1{0.5, -1.0, 1.0, 0.3, 0.5}, c2{-1.0, 2.0, 0.2, -0.1, 0.4};
  auto cov_of = [](const Comp& c) { return std::vector<double>{c.a, c.b, c.b, c.d}; };
  auto mean_of = [](const Comp& c) { return std::vector<double>{c.m1, c.m2}; };

  const GaussianMixture one(at::tensor({1.0}, at::kDouble),
                            at::tensor(mean_of(c1), at::kDouble).view({1, 2}),
                            at::tensor(cov_of(c1), at::kDouble).view({1, 2, 2}), "one");
  std::vector<double> mu2 = mean_of(c1), cov2 = cov_of(c1);
  for (double v : mean_of(c2)) mu2.push_back(v);
  for (double v : cov_of(c2)) cov2.push_back(v);
  const double w1 = 0.3, w2 = 0.7;
  const GaussianMixture two(at::tensor({w1, w2}, at::kDouble),
                            at::tensor(mu2, at::kDouble).view({2, 2}),
                            at::tensor(cov2, at::kDouble).view({2, 2, 2}), "two");

  const at::Tensor x = at::cat(
      {at::tensor({0.0, 0.0, 0.5, -1.0, -1.0, 2.0, 3.0, -2.5, 0.1, 0.2}, at::kDouble).view({5, 2}),
       2.0 * randn_d({6, 2}, 41)},
      0);
  auto noised = [](const Comp& c, double al, double sg) {
    return Comp{al * c.m1, al * c.m2, al * al * c.a + sg * sg, al * al * c.b,
                al * al * c.d + sg * sg};
  };
  for (const auto& as : std::vector<AlphaSigma>{{1.0, 0.0}, {0.8, 0.6}, {0.4, 1.3}, {1.0, 5.0}}) {
    CAPTURE(as.alpha, as.sigma);
    const Comp n1 = noised(c1, as.alpha, as.sigma), n2 = noised(c2, as.alpha, as.sigma);
    const at::Tensor lp1 = one.log_prob(x, as.alpha, as.sigma);
    const at::Tensor lp2 = two.log_prob(x, as.alpha, as.sigma);
    REQUIRE(lp1.sizes() == at::IntArrayRef{x.size(0)});
    for (int64_t i = 0; i < x.size(0); ++i) {
      const double x1 = x[i][0].item<double>(), x2 = x[i][1].item<double>();
      const double l1 = log_normal_2d(x1, x2, n1.m1, n1.m2, n1.a, n1.b, n1.d);
      const double l2 = log_normal_2d(x1, x2, n2.m1, n2.m2, n2.a, n2.b, n2.d);
      const double a1 = std::log(w1) + l1, a2 = std::log(w2) + l2, mx = std::max(a1, a2);
      const double mix = mx + std::log(std::exp(a1 - mx) + std::exp(a2 - mx));
      CAPTURE(i, x1, x2);
      CHECK(lp1[i].item<double>() == Approx(l1).epsilon(1e-12).margin(1e-12));
      CHECK(lp2[i].item<double>() == Approx(mix).epsilon(1e-12).margin(1e-12));
    }
  }
}

TEST_CASE("mixture per-row alpha, sigma equal row-by-row scalar calls", "[models][mixture]") {
  for (const auto& m : {GaussianMixture::ring2d(), GaussianMixture::gmm64(), tri3()}) {
    CAPTURE(m.name());
    const int64_t n = 9;
    const at::Tensor alpha = at::linspace(0.05, 1.0, n, at::kDouble);
    const at::Tensor sigma = at::linspace(3.0, 0.02, n, at::kDouble);  // not VP
    const at::Tensor x = eval_points(m, 0.7, 0.5, 300).slice(0, 0, n);
    const at::Tensor s = m.score(x, alpha, sigma);
    const at::Tensor lp = m.log_prob(x, alpha, sigma);
    REQUIRE(s.sizes() == x.sizes());
    REQUIRE(lp.sizes() == at::IntArrayRef{n});
    for (int64_t i = 0; i < n; ++i) {
      CAPTURE(i);
      const double a = alpha[i].item<double>(), sg = sigma[i].item<double>();
      const at::Tensor xi = x.slice(0, i, i + 1);
      CHECK(rel_err(s.slice(0, i, i + 1), m.score(xi, a, sg)) < 1e-12);
      CHECK(lp[i].item<double>() ==
            Approx(m.log_prob(xi, a, sg)[0].item<double>()).epsilon(1e-12).margin(1e-12));
    }
  }
}

TEST_CASE("mixture evaluates float32 input close to float64", "[models][mixture]") {
  for (const auto& m : {GaussianMixture::ring2d(), GaussianMixture::gmm64(), tri3()}) {
    for (const auto& as : std::vector<AlphaSigma>{{1.0, 0.05}, {0.8, 0.6}, {1.0, 5.0}}) {
      CAPTURE(m.name(), as.alpha, as.sigma);
      const at::Tensor x32 = eval_points(m, as.alpha, as.sigma, 400).to(at::kFloat);
      // The same (float32-representable) points in float64: only the arithmetic differs.
      const at::Tensor x64 = x32.to(at::kDouble);
      const at::Tensor s32 = m.score(x32, as.alpha, as.sigma);
      const at::Tensor l32 = m.log_prob(x32, as.alpha, as.sigma);
      CHECK(s32.scalar_type() == at::kFloat);
      CHECK(l32.scalar_type() == at::kFloat);
      CHECK(rel_err(s32, m.score(x64, as.alpha, as.sigma)) < 1e-4);
      CHECK(rel_err(l32, m.log_prob(x64, as.alpha, as.sigma)) < 1e-4);
      // Per-row overload with float64 alpha/sigma tensors and float32 x.
      const int64_t n = x32.size(0);
      const at::Tensor a = at::full({n}, as.alpha, at::kDouble);
      const at::Tensor sg = at::full({n}, as.sigma, at::kDouble);
      const at::Tensor r32 = m.score(x32, a, sg);
      CHECK(r32.scalar_type() == at::kFloat);
      CHECK(rel_err(r32, m.score(x64, as.alpha, as.sigma)) < 1e-4);
      // Back to float64 after float32 (the cached parameters follow the dtype).
      CHECK(m.score(x64, as.alpha, as.sigma).scalar_type() == at::kDouble);
    }
  }
}

TEST_CASE("mixture rejects bad construction and bad x", "[models][mixture]") {
  const at::Tensor w = at::tensor({0.5, 0.5}, at::kDouble);
  const at::Tensor mu = at::zeros({2, 2}, at::kDouble);
  const at::Tensor C = at::eye(2, at::kDouble).expand({2, 2, 2}).clone();
  CHECK_NOTHROW(GaussianMixture(w, mu, C));
  CHECK(has(invalid_argument_message([&] { GaussianMixture(w, mu.view({4}), C); }), "means"));
  CHECK(has(invalid_argument_message([&] { GaussianMixture(w, mu, C.slice(0, 0, 1)); }),
            "covariances"));
  CHECK(has(invalid_argument_message([&] {
              GaussianMixture(at::tensor({0.5, 0.6}, at::kDouble), mu, C);
            }),
            "weights"));
  const GaussianMixture m = tri3();
  CHECK_THROWS_AS(m.score(at::zeros({4, 2}, at::kDouble), 1.0, 0.5), std::invalid_argument);
  CHECK_THROWS_AS(m.log_prob(at::zeros({4}, at::kDouble), 1.0, 0.5), std::invalid_argument);
}

// -------------------------------------------------------------------------------------------
// 3. Moments and sampling

namespace {
// Mixture moments of p_t from the parameters: mean alpha sum_k w_k mu_k, covariance
// alpha^2 (sum_k w_k (C_k + mu_k mu_k^T) - m m^T) + sigma^2 I, by explicit loops.
std::pair<std::vector<double>, std::vector<double>> loop_moments(const GaussianMixture& g,
                                                                 double alpha, double sigma) {
  const int64_t K = g.components(), D = g.dim();
  auto w = g.weights().accessor<double, 1>();
  auto mu = g.means().accessor<double, 2>();
  const at::Tensor covs = g.covariances().contiguous();
  auto C = covs.accessor<double, 3>();
  std::vector<double> m(D, 0.0), S(D * D, 0.0);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t i = 0; i < D; ++i) m[i] += w[k] * mu[k][i];
  for (int64_t i = 0; i < D; ++i)
    for (int64_t j = 0; j < D; ++j) {
      double second = 0;
      for (int64_t k = 0; k < K; ++k) second += w[k] * (C[k][i][j] + mu[k][i] * mu[k][j]);
      S[i * D + j] = alpha * alpha * (second - m[i] * m[j]) + (i == j ? sigma * sigma : 0.0);
    }
  for (auto& v : m) v *= alpha;
  return {m, S};
}

// Checks samples against the exact moments: each mean coordinate within 5 standard errors
// sqrt(Sigma_ii / n); each sample-covariance entry S_ij within 5 standard errors of the exact
// Sigma_ij, the standard error estimated as std((x_i - xbar_i)(x_j - xbar_j)) / sqrt(n).
void check_sample_moments(const at::Tensor& X, const at::Tensor& mean, const at::Tensor& cov) {
  const int64_t n = X.size(0), D = X.size(1);
  const at::Tensor xbar = X.sum(0) / static_cast<double>(n);
  const at::Tensor Xc = X - xbar;
  const at::Tensor S = at::matmul(Xc.t(), Xc) / static_cast<double>(n - 1);
  const at::Tensor prods = Xc.unsqueeze(2) * Xc.unsqueeze(1);  // [n, D, D]
  const at::Tensor pc = prods - prods.sum(0) / static_cast<double>(n);
  const at::Tensor se = (pc * pc).sum(0).div(static_cast<double>(n - 1) * n).sqrt();
  const at::Tensor mean_se = (cov.diagonal() / static_cast<double>(n)).sqrt();
  int bad_mean = 0, bad_cov = 0;
  for (int64_t i = 0; i < D; ++i) {
    const double dev = std::abs(xbar[i].item<double>() - mean[i].item<double>());
    if (dev > 5 * mean_se[i].item<double>()) ++bad_mean;
  }
  const at::Tensor cov_dev = (S - cov).abs();
  bad_cov = static_cast<int>((cov_dev > 5 * se + 1e-12).sum().item<int64_t>());
  CHECK(bad_mean == 0);
  CHECK(bad_cov == 0);
}
}  // namespace

TEST_CASE("mixture mean and covariance equal the moments from the parameters",
          "[models][mixture][moments]") {
  for (const auto& m : {GaussianMixture::ring2d(), GaussianMixture::gmm64(), tri3()}) {
    for (const auto& as : std::vector<AlphaSigma>{{1.0, 0.0}, {0.6, 0.8}, {1.0, 5.0}, {2.0, 0.3}}) {
      CAPTURE(m.name(), as.alpha, as.sigma);
      const auto [mv, Sv] = loop_moments(m, as.alpha, as.sigma);
      const at::Tensor mean = m.mean(as.alpha), cov = m.covariance(as.alpha, as.sigma);
      REQUIRE(mean.sizes() == at::IntArrayRef{m.dim()});
      REQUIRE(cov.sizes() == at::IntArrayRef({m.dim(), m.dim()}));
      CHECK(mean.scalar_type() == at::kDouble);
      const double mscale = std::max(1.0, max_abs(at::tensor(mv, at::kDouble)));
      CHECK(max_abs(mean - at::tensor(mv, at::kDouble)) < 1e-12 * mscale);
      CHECK(rel_err(cov, at::tensor(Sv, at::kDouble).view({m.dim(), m.dim()})) < 1e-12);
    }
  }
  // ring2d in closed form: mean 0; E[mu mu^T] = (4/2) I over the 8 equally spaced modes, so
  // Cov_t = alpha^2 (2 + 0.01) I + sigma^2 I.
  const GaussianMixture ring = GaussianMixture::ring2d();
  const double a = 0.6, s = 0.8;
  CHECK(max_abs(ring.mean(a)) < 1e-14);
  CHECK(rel_err(ring.covariance(a, s), (a * a * 2.01 + s * s) * at::eye(2, at::kDouble)) < 1e-12);
}

TEST_CASE("mixture samples reproduce the exact moments and are seeded",
          "[models][mixture][sample]") {
  const int64_t n = 20000;
  uint64_t seed = 500;
  for (const auto& m : {GaussianMixture::ring2d(), tri3()}) {
    for (const auto& as : std::vector<AlphaSigma>{{1.0, 0.0}, {0.6, 0.8}, {2.0, 0.5}}) {
      CAPTURE(m.name(), as.alpha, as.sigma);
      const at::Tensor X = m.sample(n, as.alpha, as.sigma, make_gen(++seed));
      REQUIRE(X.sizes() == at::IntArrayRef({n, m.dim()}));
      REQUIRE(X.scalar_type() == at::kDouble);
      check_sample_moments(X, m.mean(as.alpha), m.covariance(as.alpha, as.sigma));
    }
  }
  {
    // gmm64 with fewer samples (its sampler forms one D x D factor per sample).
    const GaussianMixture g = GaussianMixture::gmm64();
    const at::Tensor X = g.sample(2000, 0.8, 0.6, make_gen(600));
    check_sample_moments(X, g.mean(0.8), g.covariance(0.8, 0.6));
  }
  // ring2d data samples lie near the circle of radius 2: |x| - 2 has std about 0.1.
  {
    const at::Tensor X = GaussianMixture::ring2d().sample(n, 1.0, 0.0, make_gen(601));
    const at::Tensor r = (X * X).sum(1).sqrt();
    CHECK(std::abs(r.mean().item<double>() - 2.0) < 0.01);
    CHECK(max_abs(r - 2.0) < 0.6);  // 6 std
  }
  // Same seed: identical bits; different seed: different samples; options set the dtype.
  const GaussianMixture m = tri3();
  const at::Tensor a1 = m.sample(1000, 0.7, 0.4, make_gen(7));
  const at::Tensor a2 = m.sample(1000, 0.7, 0.4, make_gen(7));
  const at::Tensor b = m.sample(1000, 0.7, 0.4, make_gen(8));
  CHECK(at::equal(a1, a2));
  CHECK_FALSE(at::equal(a1, b));
  const at::Tensor f = m.sample(1000, 0.7, 0.4, make_gen(7), at::kFloat);
  CHECK(f.scalar_type() == at::kFloat);
  CHECK(at::equal(f, a1.to(at::kFloat)));
  CHECK_THROWS_AS(m.sample(0, 1.0, 0.0, make_gen(1)), std::invalid_argument);
}

// -------------------------------------------------------------------------------------------
// 4. The mixture as a score model, CountingModel, Predictor

namespace {
// VP-linear closed form (docs/theory.md section 1): b0 = 0.1, b1 = 20.
double vp_alpha(double t) {
  return std::exp(-t * t * (20.0 - 0.1) / 4 - t * 0.1 / 2);
}
double vp_sigma(double t) {
  return std::sqrt(1 - vp_alpha(t) * vp_alpha(t));
}

// Expected output of the exact model in parameterization p, from the mixture score.
at::Tensor expected_output(const GaussianMixture& m, Param p, const at::Tensor& x, double t) {
  const double a = vp_alpha(t), s = vp_sigma(t);
  const at::Tensor score = m.score(x, a, s);
  const at::Tensor eps = -s * score;
  const at::Tensor x0 = (x + s * s * score) / a;
  switch (p) {
    case Param::Score:
      return score;
    case Param::Eps:
      return eps;
    case Param::X0:
    case Param::Denoiser:
      return x0;
    case Param::V:
      return a * eps - s * x0;
    case Param::Flow:
      return eps - x0;
  }
  return {};
}

// Error of a prediction converted from the score at (x, t), relative to the size of the terms
// the conversion combines: x0 = (x + sigma^2 score) / alpha cancels terms of size
// (|x| + sigma^2 |score|) / alpha, so ulp-level differences in the score (batched vs single-row
// reductions) grow by up to 1 / alpha near t = T, where alpha(1) = 0.0066.
double conv_err(const at::Tensor& got, const at::Tensor& want, const GaussianMixture& m,
                const at::Tensor& x, double t) {
  REQUIRE(got.sizes() == want.sizes());
  const double a = vp_alpha(t), s = vp_sigma(t);
  const double scale =
      (max_abs(x) + s * s * max_abs(m.score(x, a, s))) / a + max_abs(want.to(at::kDouble));
  return max_abs(got.to(at::kDouble) - want.to(at::kDouble)) / scale;
}

// Only predict() overridden: records the times it was given.
class RecordingModel final : public ScoreModel {
 public:
  Param param() const override { return Param::Eps; }
  at::Tensor predict(const at::Tensor& x, const at::Tensor& t) override {
    last_t = t;
    return x * 2.0;
  }
  at::Tensor last_t;
};
}  // namespace

TEST_CASE("GaussianMixtureModel predicts the exact score under the VP-linear kernel",
          "[models][model]") {
  const SchedulePtr vp = make_schedule("vp-linear");
  for (double t : {0.01, 0.05, 0.3, 0.7, 1.0}) {
    CAPTURE(t);
    REQUIRE(vp->alpha(t) == Approx(vp_alpha(t)).epsilon(1e-12));
    REQUIRE(vp->sigma(t) == Approx(vp_sigma(t)).epsilon(1e-10));
  }
  for (const auto& mix : {GaussianMixture::ring2d(), tri3()}) {
    for (Param out : all_params()) {
      GaussianMixtureModel model(mix, vp, out);
      CAPTURE(mix.name(), param_name(out));
      CHECK(model.param() == out);
      CHECK(model.name() == mix.name());
      for (double t : {0.05, 0.3, 0.7, 1.0}) {
        CAPTURE(t);
        const at::Tensor x = eval_points(mix, vp_alpha(t), vp_sigma(t), 700);
        const at::Tensor got = model.predict_at(x, t);
        CHECK(conv_err(got, expected_output(mix, out, x, t), mix, x, t) < 1e-12);
        if (out == Param::Eps)
          CHECK(rel_err(got, -vp_sigma(t) * mix.score(x, vp_alpha(t), vp_sigma(t))) < 1e-10);
      }
      // Per-row times: each row equals predict_at on that row alone.
      const at::Tensor x = eval_points(mix, 0.8, 0.6, 701);
      const int64_t n = x.size(0);
      const at::Tensor t = at::linspace(0.02, 1.0, n, at::kDouble);
      const at::Tensor got = model.predict(x, t);
      REQUIRE(got.sizes() == x.sizes());
      for (int64_t i = 0; i < n; ++i) {
        CAPTURE(i);
        const double ti = t[i].item<double>();
        const at::Tensor xi = x.slice(0, i, i + 1);
        CHECK(conv_err(got.slice(0, i, i + 1), model.predict_at(xi, ti), mix, xi, ti) < 1e-12);
        if (out == Param::Score)
          CHECK(rel_err(got.slice(0, i, i + 1), model.predict_at(xi, ti)) < 1e-12);
        CHECK(conv_err(got.slice(0, i, i + 1), expected_output(mix, out, xi, ti), mix, xi, ti) <
              1e-12);
      }
      CHECK_THROWS_AS(model.predict(x, t.slice(0, 0, n - 1)), std::invalid_argument);
    }
  }
  CHECK_THROWS_AS(GaussianMixtureModel(tri3(), nullptr), std::invalid_argument);
}

TEST_CASE("ScoreModel::predict_at defaults to predict with a [n] time tensor", "[models][model]") {
  RecordingModel m;
  const at::Tensor x = randn_d({4, 3}, 800);
  const at::Tensor y = m.predict_at(x, 0.25);
  REQUIRE(m.last_t.defined());
  CHECK(m.last_t.sizes() == at::IntArrayRef{4});
  CHECK(at::equal(m.last_t, at::full({4}, 0.25, at::kDouble)));
  CHECK(at::equal(y, x * 2.0));
}

TEST_CASE("CountingModel counts every call and forwards it", "[models][model]") {
  GaussianMixtureModel inner(GaussianMixture::ring2d(), make_schedule("vp-linear"), Param::Eps);
  CountingModel c(inner);
  CHECK(c.count() == 0);
  CHECK(c.param() == Param::Eps);
  CHECK(c.name() == "ring2d");
  const at::Tensor x = randn_d({6, 2}, 900);
  const at::Tensor t = at::full({6}, 0.4, at::kDouble);
  CHECK(at::equal(c.predict(x, t), inner.predict(x, t)));
  CHECK(c.count() == 1);
  CHECK(at::equal(c.predict_at(x, 0.4), inner.predict_at(x, 0.4)));
  CHECK(c.count() == 2);
  c.predict_at(x, 0.9);
  c.predict(x, t);
  c.predict_at(x, 0.1);
  CHECK(c.count() == 5);
  c.reset();
  CHECK(c.count() == 0);
  c.predict_at(x, 0.5);
  CHECK(c.count() == 1);
}

TEST_CASE("Predictor converts with the kernel's alpha and sigma, one model call per as()",
          "[models][predictor]") {
  const SchedulePtr vp = make_schedule("vp-linear");
  const GaussianMixture mix = tri3();
  const at::Tensor x = eval_points(mix, 0.8, 0.6, 1000);
  for (Param out : all_params()) {
    GaussianMixtureModel model(mix, vp, out);
    CountingModel counted(model);
    const Predictor pred(counted, vp.get());
    CHECK(pred.kernel() == vp.get());
    CHECK(&pred.model() == &counted);
    for (double t : {0.1, 0.5, 0.9}) {
      for (Param to : all_params()) {
        CAPTURE(param_name(out), param_name(to), t);
        const int64_t before = counted.count();
        const at::Tensor got = pred.as(to, x, t);
        CHECK(counted.count() == before + 1);
        CHECK(conv_err(got, expected_output(mix, to, x, t), mix, x, t) < 1e-12);
      }
      CHECK(conv_err(pred.eps(x, t), expected_output(mix, Param::Eps, x, t), mix, x, t) < 1e-12);
      CHECK(conv_err(pred.x0(x, t), expected_output(mix, Param::X0, x, t), mix, x, t) < 1e-12);
      CHECK(rel_err(pred.score(x, t), mix.score(x, vp_alpha(t), vp_sigma(t))) < 1e-10);
    }
  }

  // No kernel: a score model can only give the score; any other model is refused.
  GaussianMixtureModel score_model(mix, vp, Param::Score);
  const Predictor bare(score_model, nullptr);
  CHECK(bare.kernel() == nullptr);
  CHECK(rel_err(bare.score(x, 0.5), mix.score(x, vp_alpha(0.5), vp_sigma(0.5))) < 1e-10);
  CHECK_THROWS_AS(bare.as(Param::Eps, x, 0.5), std::invalid_argument);
  CHECK_THROWS_AS(bare.x0(x, 0.5), std::invalid_argument);
  for (Param out : {Param::Eps, Param::X0, Param::V, Param::Denoiser}) {
    GaussianMixtureModel m(mix, vp, out);
    CAPTURE(param_name(out));
    const std::string msg = invalid_argument_message([&] { Predictor p(m, nullptr); });
    CHECK(has(msg, param_name(out)));
  }
}

// -------------------------------------------------------------------------------------------
// 5. JSON input and built-ins

namespace {
const char* kValidCov = R"({
  "weights": [0.25, 0.75],
  "means": [[0, 1], [2.5, -3]],
  "covariances": [[[1.0, 0.2], [0.2, 0.5]], [[2, 0], [0, 1]]]
})";
const char* kValidStds = R"({
  "weights": [0.2, 0.3, 0.5],
  "means": [[0, 0, 0], [1, 1, 1], [2, -2, 2]],
  "stds": [0.5, 1, 2]
})";

// from_json_text must throw std::invalid_argument naming the source and containing `parts`.
void expect_json_error(const std::string& text, const std::vector<std::string>& parts) {
  const std::string src = "SRC-mix.json";
  const std::string msg =
      invalid_argument_message([&] { GaussianMixture::from_json_text(text, src); });
  CAPTURE(text, msg);
  CHECK(has(msg, src));
  for (const auto& p : parts) {
    CAPTURE(p);
    CHECK(has(msg, p));
  }
}
}  // namespace

TEST_CASE("mixture JSON: valid files load with the right shapes and values", "[models][json]") {
  TempDir dir;
  {
    const GaussianMixture g = GaussianMixture::from_json_file(dir.write("cov.json", kValidCov));
    CHECK(g.components() == 2);
    CHECK(g.dim() == 2);
    CHECK(g.weights().sizes() == at::IntArrayRef{2});
    CHECK(g.means().sizes() == at::IntArrayRef({2, 2}));
    CHECK(g.covariances().sizes() == at::IntArrayRef({2, 2, 2}));
    CHECK(at::equal(g.weights(), at::tensor({0.25, 0.75}, at::kDouble)));
    CHECK(at::equal(g.means(), at::tensor({0.0, 1.0, 2.5, -3.0}, at::kDouble).view({2, 2})));
    CHECK(
        rel_err(g.covariances(),
                at::tensor({1.0, 0.2, 0.2, 0.5, 2.0, 0.0, 0.0, 1.0}, at::kDouble).view({2, 2, 2})) <
        1e-15);
  }
  {
    const GaussianMixture g = GaussianMixture::from_json_file(dir.write("stds.json", kValidStds));
    CHECK(g.components() == 3);
    CHECK(g.dim() == 3);
    CHECK(g.covariances().sizes() == at::IntArrayRef({3, 3, 3}));
    const std::vector<double> sd = {0.5, 1.0, 2.0};
    for (int k = 0; k < 3; ++k)
      CHECK(rel_err(g.covariances()[k], sd[k] * sd[k] * at::eye(3, at::kDouble)) < 1e-15);
  }
  // Weights may miss 1 by less than 1e-9.
  CHECK_NOTHROW(GaussianMixture::from_json_text(
      R"({"weights": [0.5, 0.5000000001], "means": [[0], [1]], "stds": [1, 1]})", "s"));
}

TEST_CASE("mixture JSON: bad input names the source and the field", "[models][json]") {
  SECTION("malformed JSON") {
    expect_json_error(R"({"weights": [1,)", {"malformed"});
  }
  SECTION("not an object") {
    expect_json_error("[1, 2, 3]", {"object"});
  }
  SECTION("missing weights") {
    expect_json_error(R"({"means": [[0]], "stds": [1]})", {"'weights'", "missing"});
  }
  SECTION("weights not summing to 1") {
    expect_json_error(R"({"weights": [0.5, 0.6], "means": [[0], [1]], "stds": [1, 1]})",
                      {"'weights'", "sum"});
    expect_json_error(R"({"weights": [0.5, 0.50000001], "means": [[0], [1]], "stds": [1, 1]})",
                      {"'weights'", "sum"});
  }
  SECTION("negative weight") {
    expect_json_error(R"({"weights": [1.5, -0.5], "means": [[0], [1]], "stds": [1, 1]})",
                      {"weights[1]"});
  }
  SECTION("means count differs from weights count") {
    expect_json_error(R"({"weights": [0.5, 0.5], "means": [[0, 0]], "stds": [1, 1]})", {"'means'"});
  }
  SECTION("ragged means") {
    expect_json_error(R"({"weights": [0.5, 0.5], "means": [[0, 0], [1, 1, 1]], "stds": [1, 1]})",
                      {"means[1]"});
  }
  SECTION("covariance of the wrong size") {
    expect_json_error(R"({"weights": [1], "means": [[0, 0]],
                          "covariances": [[[1, 0, 0], [0, 1, 0], [0, 0, 1]]]})",
                      {"covariances[0]"});
    expect_json_error(R"({"weights": [1], "means": [[0, 0]], "covariances": [[[1, 0], [0]]]})",
                      {"covariances[0]"});
  }
  SECTION("non-symmetric covariance") {
    expect_json_error(R"({"weights": [0.5, 0.5], "means": [[0, 0], [1, 1]],
                          "covariances": [[[1, 0], [0, 1]], [[1, 0.3], [0.2, 1]]]})",
                      {"covariances[1]", "symmetric"});
  }
  SECTION("covariance not positive definite") {
    expect_json_error(R"({"weights": [1], "means": [[0, 0]], "covariances": [[[1, 2], [2, 1]]]})",
                      {"covariances[0]", "positive definite"});
  }
  SECTION("both covariances and stds") {
    expect_json_error(R"({"weights": [1], "means": [[0]], "covariances": [[[1]]], "stds": [1]})",
                      {"covariances", "stds"});
  }
  SECTION("neither covariances nor stds") {
    expect_json_error(R"({"weights": [1], "means": [[0]]})", {"'covariances'", "stds"});
  }
  SECTION("unknown field") {
    expect_json_error(R"({"weights": [1], "means": [[0]], "covariance": [[[1]]]})",
                      {"'covariance'", "unknown"});
  }
  SECTION("non-number entries") {
    expect_json_error(R"({"weights": [0.5, "half"], "means": [[0], [1]], "stds": [1, 1]})",
                      {"weights[1]"});
    expect_json_error(R"({"weights": [1], "means": [[0, null]], "stds": [1]})", {"means[0][1]"});
    expect_json_error(R"({"weights": [1], "means": [[0]], "stds": [true]})", {"stds[0]"});
  }
  SECTION("non-positive std") {
    expect_json_error(R"({"weights": [1], "means": [[0]], "stds": [0]})", {"stds[0]"});
  }
}

TEST_CASE("mixture JSON files: errors name the path", "[models][json]") {
  TempDir dir;
  const std::string missing = (dir.path / "does_not_exist.json").string();
  CHECK(has(invalid_argument_message([&] { GaussianMixture::from_json_file(missing); }), missing));
  const std::string bad = dir.write("bad.json", R"({"weights": [1], "means": [[0]]})");
  const std::string msg = invalid_argument_message([&] { GaussianMixture::from_json_file(bad); });
  CHECK(has(msg, bad));
  CHECK(has(msg, "covariances"));
  const std::string sym = dir.write(
      "sym.json", R"({"weights": [1], "means": [[0, 0]], "covariances": [[[1, 0.5], [0, 1]]]})");
  const std::string msg2 = invalid_argument_message([&] { GaussianMixture::from_json_file(sym); });
  CHECK(has(msg2, sym));
  CHECK(has(msg2, "covariances[0]"));
}

TEST_CASE("load_mixture resolves built-in names and gmm:PATH", "[models][builtin]") {
  const GaussianMixture ring = load_mixture("ring2d");
  CHECK(ring.name() == "ring2d");
  CHECK(ring.dim() == 2);
  CHECK(ring.components() == 8);
  const GaussianMixture g = load_mixture("gmm64");
  CHECK(g.dim() == 64);
  CHECK(g.components() == 5);

  TempDir dir;
  const std::string path = dir.write("m.json", kValidCov);
  const GaussianMixture f = load_mixture("gmm:" + path);
  CHECK(f.dim() == 2);
  CHECK(f.components() == 2);
  CHECK(at::equal(f.means(), GaussianMixture::from_json_file(path).means()));
  CHECK(has(invalid_argument_message([&] { load_mixture("gmm:" + path + ".missing"); }),
            path + ".missing"));

  const std::string msg = invalid_argument_message([] { load_mixture("nope"); });
  CHECK(has(msg, "nope"));
  CHECK(has(msg, "ring2d"));
  CHECK(has(msg, "gmm64"));
  CHECK(has(msg, "gmm:"));
  CHECK_THROWS_AS(load_mixture("gmm:"), std::invalid_argument);
  CHECK_THROWS_AS(load_mixture("RING2D"), std::invalid_argument);

  // The registry lists the same three specs.
  std::vector<std::string> names;
  for (const auto& info : model_registry()) names.push_back(info.name);
  CHECK(names == std::vector<std::string>{"ring2d", "gmm64", "gmm:FILE.json"});
}

TEST_CASE("ring2d: 8 equal modes on the circle of radius 2 with std 0.1", "[models][builtin]") {
  const GaussianMixture r = GaussianMixture::ring2d();
  REQUIRE(r.components() == 8);
  REQUIRE(r.dim() == 2);
  CHECK(max_abs(r.weights() - 0.125) < 1e-15);
  // Every point 2 (cos 2 pi k / 8, sin 2 pi k / 8) is one of the means, each used once.
  std::vector<bool> used(8, false);
  for (int k = 0; k < 8; ++k) {
    const double ex = 2 * std::cos(2 * kPi * k / 8), ey = 2 * std::sin(2 * kPi * k / 8);
    int found = -1;
    for (int j = 0; j < 8; ++j) {
      const double dx = r.means()[j][0].item<double>() - ex;
      const double dy = r.means()[j][1].item<double>() - ey;
      if (std::hypot(dx, dy) < 1e-12) found = j;
    }
    CAPTURE(k);
    REQUIRE(found >= 0);
    CHECK_FALSE(used[found]);
    used[found] = true;
  }
  for (int k = 0; k < 8; ++k)
    CHECK(rel_err(r.covariances()[k], 0.01 * at::eye(2, at::kDouble)) < 1e-15);
}

TEST_CASE("gmm64: K = 5, D = 64, deterministic, SPD covariances", "[models][builtin]") {
  const GaussianMixture a = GaussianMixture::gmm64(), b = GaussianMixture::gmm64();
  REQUIRE(a.components() == 5);
  REQUIRE(a.dim() == 64);
  CHECK(a.name() == "gmm64");
  CHECK(at::equal(a.weights(), b.weights()));
  CHECK(at::equal(a.means(), b.means()));
  CHECK(at::equal(a.covariances(), b.covariances()));
  CHECK(std::abs(a.weights().sum().item<double>() - 1.0) < 1e-12);
  CHECK((a.weights() > 0).all().item<bool>());
  const at::Tensor C = a.covariances();
  CHECK(max_abs(C - C.transpose(1, 2)) == 0.0);
  const at::Tensor ev = at::linalg_eigvalsh(C);  // [5, 64]
  CHECK(ev.min().item<double>() > 0.0);
  // Anisotropic: the eigenvalues of each component spread over a range.
  for (int k = 0; k < 5; ++k) CHECK(ev[k].max().item<double>() > 2 * ev[k].min().item<double>());
}

TEST_CASE("mixture: the direct small-batch path equals the tensor path, and affine_score convert",
          "[models][mixture]") {
  // Small CPU batches without gradient take plain loops; a gradient-tracking input takes the
  // tensor path, the reference here. affine_score(x, a, s, cx, cp) is cx x + cp score.
  for (const auto& mix : {GaussianMixture::ring2d(), GaussianMixture::gmm64()}) {
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
    for (const int64_t n : {1, 3, 2000}) {
      const at::Tensor x = 2.0 * at::randn({n, mix.dim()}, g, at::kDouble);
      for (const auto& [a, s] :
           {std::pair{0.9, 0.3}, std::pair{0.05, 0.99}, std::pair{1.0, 1e-3}}) {
        const at::Tensor direct = mix.score(x, a, s);
        const at::Tensor tensor = mix.score(x.clone().requires_grad_(), a, s).detach();
        INFO(mix.name() << " n=" << n << " alpha=" << a);
        CHECK((direct - tensor).abs().max().item<double>() <=
              1e-12 * (1.0 + tensor.abs().max().item<double>()));
        const at::Tensor d32 = mix.score(x.to(at::kFloat), a, s);
        CHECK(d32.scalar_type() == at::kFloat);
        CHECK((d32.to(at::kDouble) - tensor).abs().max().item<double>() <=
              1e-4 * (1.0 + tensor.abs().max().item<double>()));
        for (Param p : {Param::Eps, Param::X0, Param::V, Param::Denoiser}) {
          const LinearCoeffs c = conversion_coefficients(Param::Score, p, a, s);
          const at::Tensor want = convert(tensor, Param::Score, p, x, a, s);
          const at::Tensor got = mix.affine_score(x, a, s, c.cx, c.cp);
          CHECK((got - want).abs().max().item<double>() <=
                1e-12 * (1.0 + want.abs().max().item<double>()));
        }
      }
    }
  }
}

TEST_CASE("mixture kernel: exp of non-positive arguments to 3e-16 relative", "[models][mixture]") {
  // Against the C library's exp over [-708, 0] (both sides of every power of two in between),
  // with 0 below -708 (including -inf) and NaN kept.
  std::vector<double> v, want;
  for (int i = 0; i <= 200000; ++i) {
    const double x = -708.0 * i / 200000.0;
    v.push_back(x);
    v.push_back(std::nextafter(x, 0.0));
  }
  for (int n = 0; n < 1022; ++n) {  // arguments that round to n and n + 1 multiples of ln 2
    v.push_back(-(n + 0.5) * std::log(2.0) + 1e-12);
    v.push_back(-(n + 0.5) * std::log(2.0) - 1e-12);
  }
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return x < -708.0; }), v.end());
  for (double x : v) want.push_back(std::exp(x));
  std::vector<double> got = v;
  sdekit::detail::exp_nonpositive(got.data(), static_cast<int64_t>(got.size()));
  double worst = 0.0;
  for (size_t i = 0; i < v.size(); ++i)
    worst = std::max(worst, std::abs(got[i] - want[i]) / want[i]);
  CHECK(worst < 3e-16);
  std::vector<double> edge = {-709.0, -1e300, -INFINITY, NAN, 0.0, -0.0};
  sdekit::detail::exp_nonpositive(edge.data(), static_cast<int64_t>(edge.size()));
  CHECK(edge[0] == 0.0);
  CHECK(edge[1] == 0.0);
  CHECK(edge[2] == 0.0);
  CHECK(std::isnan(edge[3]));
  CHECK(edge[4] == 1.0);
  CHECK(edge[5] == 1.0);
}

TEST_CASE("mixture: the blocked direct path equals the tensor path in 1 to 6 dimensions",
          "[models][mixture]") {
  // Blocks of 32 rows (specialised for D <= 4) and the rows left over, against the tensor path;
  // points far from every mode (responsibilities that underflow but one) included; a NaN row
  // gives NaN in that row only.
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(11);
  for (int64_t D = 1; D <= 6; ++D) {
    for (int64_t K : {1, 3, 9}) {
      const at::Tensor w = at::softmax(at::randn({K}, g, at::kDouble), 0);
      const at::Tensor mu = 3.0 * at::randn({K, D}, g, at::kDouble);
      const at::Tensor A = at::randn({K, D, D}, g, at::kDouble);
      const at::Tensor C = at::matmul(A, A.transpose(1, 2)) / D + 0.05 * at::eye(D, at::kDouble);
      const GaussianMixture mix(w, mu, C, "random");
      for (const int64_t n : {1, 31, 32, 33, 100}) {
        at::Tensor x = 2.0 * at::randn({n, D}, g, at::kDouble);
        x[0] = x[0] * 40.0;  // far out: every responsibility but one underflows
        for (const auto& [a, s] : {std::pair{0.9, 0.3}, std::pair{1.0, 1e-2}}) {
          INFO("D=" << D << " K=" << K << " n=" << n << " alpha=" << a);
          const at::Tensor direct = mix.score(x, a, s);
          const at::Tensor tensor = mix.score(x.clone().requires_grad_(), a, s).detach();
          REQUIRE(at::isfinite(direct).all().item<bool>());
          CHECK((direct - tensor).abs().max().item<double>() <=
                1e-12 * (1.0 + tensor.abs().max().item<double>()));
        }
        if (n >= 32) {
          at::Tensor xn = x.clone();
          xn[n / 2][0] = NAN;
          const at::Tensor out = mix.score(xn, 0.9, 0.3);
          CHECK(at::isnan(out[n / 2]).all().item<bool>());
          CHECK(at::isfinite(out.slice(0, 0, n / 2)).all().item<bool>());
          CHECK(at::isfinite(out.slice(0, n / 2 + 1)).all().item<bool>());
        }
      }
    }
  }
}
