// Evaluation metrics (docs/theory.md section 6): the Frechet distance between Gaussians against
// closed forms and an independent eigenvalue computation, mergeable feature statistics (Chan et
// al.) against direct computation, KID (Binkowski et al. 2018) against a brute-force unbiased
// MMD^2, and bad input.
#include <ATen/CPUGeneratorImpl.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <utility>

#include "experiments/frechet.hpp"
#include "experiments/kde.hpp"
#include "experiments/kid.hpp"

using namespace sdekit;

namespace {

at::Generator gen(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

double rel_err(double got, double want) {
  return std::abs(got - want) / std::max(std::abs(want), 1e-300);
}

double max_abs(const at::Tensor& a) {
  return a.abs().max().item<double>();
}

// A random orthogonal matrix (QR of a Gaussian matrix).
at::Tensor random_rotation(int64_t d, at::Generator& g) {
  return std::get<0>(at::linalg_qr(at::randn({d, d}, g, at::kDouble)));
}

// A random symmetric positive definite matrix with eigenvalues in [0.2, 2.2].
at::Tensor random_spd(int64_t d, at::Generator& g) {
  const at::Tensor Q = random_rotation(d, g);
  const at::Tensor ev = at::rand({d}, g, at::kDouble) * 2.0 + 0.2;
  return at::matmul(Q * ev.unsqueeze(0), Q.transpose(0, 1));
}

// Closed form for commuting covariances with eigenvalues a, b in a shared basis:
// ||m1 - m2||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
double commuting_fd(const at::Tensor& m1, const at::Tensor& m2, const at::Tensor& a,
                    const at::Tensor& b) {
  return ((m1 - m2).pow(2).sum() + (a.sqrt() - b.sqrt()).pow(2).sum()).item<double>();
}

// Samples of N(mu, C) via a Cholesky factor.
at::Tensor gaussian_samples(int64_t n, const at::Tensor& mu, const at::Tensor& C,
                            at::Generator& g) {
  const at::Tensor L = at::linalg_cholesky(C);
  return at::randn({n, mu.size(0)}, g, at::kDouble).matmul(L.transpose(0, 1)) + mu;
}

// The unbiased MMD^2 with k(a, b) = (a . b / d + 1)^3, by explicit loops (Binkowski et al. 2018).
double brute_mmd2(const at::Tensor& x, const at::Tensor& y) {
  const int64_t m = x.size(0), d = x.size(1);
  auto k = [d](const at::Tensor& p, int64_t i, const at::Tensor& q, int64_t j) {
    double dot = 0;
    for (int64_t c = 0; c < d; ++c) dot += p[i][c].item<double>() * q[j][c].item<double>();
    return std::pow(dot / static_cast<double>(d) + 1.0, 3);
  };
  double sxx = 0, syy = 0, sxy = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < m; ++j) {
      if (i != j) {
        sxx += k(x, i, x, j);
        syy += k(y, i, y, j);
      }
      sxy += k(x, i, y, j);
    }
  const double md = static_cast<double>(m);
  return sxx / (md * (md - 1)) + syy / (md * (md - 1)) - 2.0 * sxy / (md * md);
}

}  // namespace

TEST_CASE("Frechet distance: diagonal covariances match the closed form", "[metrics][frechet]") {
  at::Generator g = gen(1);
  const int64_t d = 6;
  const at::Tensor m1 = at::randn({d}, g, at::kDouble), m2 = at::randn({d}, g, at::kDouble);
  const at::Tensor a = at::rand({d}, g, at::kDouble) * 3.0 + 0.1;
  const at::Tensor b = at::rand({d}, g, at::kDouble) * 3.0 + 0.1;
  const double fd = frechet_distance(m1, at::diag(a), m2, at::diag(b));
  CHECK(rel_err(fd, commuting_fd(m1, m2, a, b)) < 1e-10);
}

TEST_CASE("Frechet distance: shared rotation Q diag(a) Q^T vs Q diag(b) Q^T",
          "[metrics][frechet]") {
  at::Generator g = gen(2);
  const int64_t d = 8;
  const at::Tensor Q = random_rotation(d, g);
  const at::Tensor m1 = at::randn({d}, g, at::kDouble), m2 = at::randn({d}, g, at::kDouble);
  const at::Tensor a = at::rand({d}, g, at::kDouble) * 3.0 + 0.1;
  const at::Tensor b = at::rand({d}, g, at::kDouble) * 3.0 + 0.1;
  const at::Tensor C1 = at::matmul(Q * a.unsqueeze(0), Q.transpose(0, 1));
  const at::Tensor C2 = at::matmul(Q * b.unsqueeze(0), Q.transpose(0, 1));
  CHECK(rel_err(frechet_distance(m1, C1, m2, C2), commuting_fd(m1, m2, a, b)) < 1e-10);
  // Equal means: only the covariance term remains, still the closed form.
  CHECK(rel_err(frechet_distance(m1, C1, m1, C2), commuting_fd(m1, m1, a, b)) < 1e-10);
}

TEST_CASE("Frechet distance: 1-D Gaussians give (m1 - m2)^2 + (s1 - s2)^2", "[metrics][frechet]") {
  const double m1 = 0.3, m2 = -1.2, s1 = 0.7, s2 = 2.5;
  const double fd = frechet_distance(
      at::tensor({m1}, at::kDouble), at::tensor({s1 * s1}, at::kDouble).reshape({1, 1}),
      at::tensor({m2}, at::kDouble), at::tensor({s2 * s2}, at::kDouble).reshape({1, 1}));
  const double want = (m1 - m2) * (m1 - m2) + (s1 - s2) * (s1 - s2);
  CHECK(rel_err(fd, want) < 1e-10);
}

TEST_CASE("Frechet distance: symmetric, zero on identical inputs, matches eigvals(C1 C2)",
          "[metrics][frechet]") {
  at::Generator g = gen(3);
  const int64_t d = 10;
  const at::Tensor m1 = at::randn({d}, g, at::kDouble), m2 = at::randn({d}, g, at::kDouble);
  const at::Tensor C1 = random_spd(d, g), C2 = random_spd(d, g);
  const double fd12 = frechet_distance(m1, C1, m2, C2);
  const double fd21 = frechet_distance(m2, C2, m1, C1);
  CHECK(rel_err(fd12, fd21) < 1e-10);
  CHECK(std::abs(frechet_distance(m1, C1, m1, C1)) < 1e-10);

  // Independent computation 1: C1 C2 is similar to an SPD matrix, so its (non-symmetric)
  // eigenvalues are real and positive and Tr((C1 C2)^{1/2}) = sum sqrt(lambda_i).
  const at::Tensor lam = at::real(at::linalg_eigvals(at::matmul(C1, C2)));
  const double tr_sqrt = lam.sqrt().sum().item<double>();
  const double want =
      ((m1 - m2).pow(2).sum() + at::trace(C1) + at::trace(C2)).item<double>() - 2.0 * tr_sqrt;
  CHECK(rel_err(fd12, want) < 1e-8);

  // Independent computation 2: S1 = C1^{1/2} by at::linalg_eigh, then eigvalsh(S1 C2 S1).
  const auto eh = at::linalg_eigh(C1);
  const at::Tensor V = std::get<1>(eh);
  const at::Tensor S1 = at::matmul(V * std::get<0>(eh).sqrt().unsqueeze(0), V.transpose(0, 1));
  const double tr_sqrt2 = at::linalg_eigvalsh(S1.matmul(C2).matmul(S1)).sqrt().sum().item<double>();
  CHECK(std::abs(tr_sqrt - tr_sqrt2) < 1e-8 * tr_sqrt);

  // Float32 inputs are promoted to float64: the result matches the float64 call on the same values.
  const double fd_f =
      frechet_distance(m1.to(at::kFloat), C1.to(at::kFloat), m2.to(at::kFloat), C2.to(at::kFloat));
  CHECK(rel_err(fd_f, frechet_distance(
                          m1.to(at::kFloat).to(at::kDouble), C1.to(at::kFloat).to(at::kDouble),
                          m2.to(at::kFloat).to(at::kDouble), C2.to(at::kFloat).to(at::kDouble))) <
        1e-12);
}

TEST_CASE("GaussianStats: mean and covariance equal the direct computation", "[metrics][stats]") {
  at::Generator g = gen(4);
  const at::Tensor x = at::randn({500, 5}, g, at::kDouble) * 2.0 + 3.0;
  GaussianStats s;
  s.add(x);
  CHECK(s.count == 500);
  CHECK(s.dim() == 5);
  const at::Tensor mu = at::mean(x, 0);
  const at::Tensor xc = x - mu;
  const at::Tensor C = at::matmul(xc.transpose(0, 1), xc) / 499.0;
  CHECK(max_abs(s.mean() - mu) < 1e-12);
  CHECK(max_abs(s.covariance() - C) < 1e-12);

  // A float32 batch is accumulated in float64 from its float32 values.
  GaussianStats sf;
  sf.add(x.to(at::kFloat));
  GaussianStats sd;
  sd.add(x.to(at::kFloat).to(at::kDouble));
  CHECK(sf.mean().scalar_type() == at::kDouble);
  CHECK(max_abs(sf.covariance() - sd.covariance()) < 1e-12);
}

TEST_CASE("GaussianStats: merging uneven shards equals one pass", "[metrics][stats]") {
  at::Generator g = gen(5);
  const at::Tensor x = at::randn({1000, 4}, g, at::kDouble) * 1.5 - 2.0;
  GaussianStats one;
  one.add(x);

  // Three uneven shards accumulated separately, then merged (Chan et al. pairwise update).
  GaussianStats a, b, c;
  a.add(x.slice(0, 0, 17));
  b.add(x.slice(0, 17, 267));
  c.add(x.slice(0, 267, 1000));
  GaussianStats merged;
  merged.merge(a).merge(b).merge(c);
  CHECK(merged.count == 1000);
  CHECK(max_abs(merged.mean() - one.mean()) < 1e-12);
  CHECK(max_abs(merged.covariance() - one.covariance()) < 1e-12);

  // Merging in another order, and streaming batches through add(), agree as well.
  GaussianStats other;
  other.merge(c).merge(a).merge(b);
  CHECK(max_abs(other.covariance() - one.covariance()) < 1e-12);
  GaussianStats streamed;
  for (int64_t i = 0; i < 1000; i += 93)
    streamed.add(x.slice(0, i, std::min<int64_t>(i + 93, 1000)));
  CHECK(max_abs(streamed.mean() - one.mean()) < 1e-12);
  CHECK(max_abs(streamed.covariance() - one.covariance()) < 1e-12);
}

TEST_CASE("GaussianStats: FD between two large samples of one Gaussian is small",
          "[metrics][stats][frechet]") {
  at::Generator g = gen(6);
  const int64_t d = 4, n = 20000;
  const at::Tensor mu = at::tensor({1.0, -0.5, 0.25, 2.0}, at::kDouble);
  const at::Tensor C = random_spd(d, g);
  GaussianStats s1, s2;
  s1.add(gaussian_samples(n, mu, C, g));
  s2.add(gaussian_samples(n, mu, C, g));
  // Finite-sample bias: E||m1 - m2||^2 = 2 Tr(C) / n and the covariance term is about
  // ||dC1 - dC2||^2 / 4 ~ d (d + 1) / (2 n) in units of C's eigenvalues: ~1e-3 here.
  // 1e-2 allows a 10x fluctuation, and is far below the FD of a unit mean shift (1.0, below).
  const double fd = frechet_distance(s1, s2);
  CHECK(fd >= 0.0);
  CHECK(fd < 1e-2);
  GaussianStats s3;
  s3.add(gaussian_samples(n, mu + at::tensor({1.0, 0.0, 0.0, 0.0}, at::kDouble), C, g));
  CHECK(std::abs(frechet_distance(s1, s3) - 1.0) < 0.05);
}

TEST_CASE("KID: the unbiased estimator equals a brute-force computation", "[metrics][kid]") {
  const at::Tensor x =
      at::tensor({0.5, -1.0, 2.0, 1.5, 0.0, -0.5, -2.0, 1.0, 0.25, 0.75, 0.3, -1.2}, at::kDouble)
          .reshape({4, 3});
  const at::Tensor y =
      at::tensor({1.0, 1.0, -1.0, 0.2, -0.7, 0.4, 2.5, 0.1, -0.3, -1.5, 0.9, 0.6}, at::kDouble)
          .reshape({4, 3});
  const double want = brute_mmd2(x, y);
  // A subset of all rows is a permutation: MMD^2_u is permutation invariant, so every subset
  // gives the full-sample value and the standard error is 0.
  const KidResult r1 = kernel_inception_distance(x, y, 1, 4, 0);
  CHECK(std::abs(r1.mean - want) < 1e-12);
  CHECK(r1.subsets == 1);
  CHECK(r1.subset_size == 4);
  const KidResult r5 = kernel_inception_distance(x, y, 5, 4, 123);
  CHECK(std::abs(r5.mean - want) < 1e-12);
  CHECK(r5.std_error < 1e-12);
  // Identical sets: the unbiased estimator is not 0, but it is what the brute force says.
  CHECK(std::abs(kernel_inception_distance(x, x, 1, 4, 0).mean - brute_mmd2(x, x)) < 1e-12);
}

TEST_CASE("KID: same distribution near 0, shifted distribution far from 0", "[metrics][kid]") {
  at::Generator g = gen(7);
  const int64_t d = 8;
  const at::Tensor x = at::randn({4000, d}, g, at::kDouble);
  const at::Tensor y = at::randn({3000, d}, g, at::kDouble);
  const KidResult same = kernel_inception_distance(x, y, 100, 200, 11);
  // MMD^2_u is unbiased and the two samples share one law: the mean is within 3 SE of 0.
  CHECK(same.std_error > 0.0);
  CHECK(std::abs(same.mean) < 3.0 * same.std_error);

  const at::Tensor z = at::randn({3000, d}, g, at::kDouble) + 1.0;
  const KidResult diff = kernel_inception_distance(x, z, 100, 200, 11);
  CHECK(diff.mean > 0.0);
  CHECK(diff.mean > 20.0 * diff.std_error);

  // Deterministic for a seed; float32 inputs agree with float64 inputs of the same values.
  const KidResult again = kernel_inception_distance(x, y, 100, 200, 11);
  CHECK(again.mean == same.mean);
  const KidResult f = kernel_inception_distance(x.to(at::kFloat), y.to(at::kFloat), 10, 100, 3);
  const KidResult dd = kernel_inception_distance(x.to(at::kFloat).to(at::kDouble),
                                                 y.to(at::kFloat).to(at::kDouble), 10, 100, 3);
  CHECK(f.mean == dd.mean);
}

TEST_CASE("Metrics: bad input throws std::invalid_argument naming the problem", "[metrics][bad]") {
  const at::Tensor m3 = at::zeros({3}, at::kDouble), m4 = at::zeros({4}, at::kDouble);
  const at::Tensor I3 = at::eye(3, at::kDouble), I4 = at::eye(4, at::kDouble);
  using Catch::Contains;
  CHECK_THROWS_AS(frechet_distance(m3, I3, m4, I4), std::invalid_argument);
  CHECK_THROWS_WITH(frechet_distance(m3, I3, m4, I4), Contains("mu2") && Contains("[3]"));
  CHECK_THROWS_WITH(frechet_distance(m3, at::ones({3, 4}, at::kDouble), m3, I3),
                    Contains("C1") && Contains("square"));
  CHECK_THROWS_WITH(frechet_distance(m3, I3, m3, I4), Contains("C2") && Contains("[3, 3]"));
  CHECK_THROWS_WITH(frechet_distance(at::zeros({3, 1}, at::kDouble), I3, m3, I3), Contains("mu1"));
  at::Tensor bad = I3.clone();
  bad[0][1] = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(frechet_distance(m3, bad, m3, I3), Contains("C1") && Contains("non-finite"));

  GaussianStats s;
  CHECK_THROWS_AS(s.mean(), std::invalid_argument);
  s.add(at::zeros({1, 3}, at::kDouble));
  CHECK_THROWS_WITH(s.covariance(), Contains("count >= 2"));
  CHECK_THROWS_WITH(s.add(at::zeros({2, 4}, at::kDouble)), Contains("dimension 3"));
  CHECK_THROWS_WITH(s.add(at::zeros({4}, at::kDouble)), Contains("[n, d]"));
  GaussianStats t;
  t.add(at::zeros({2, 4}, at::kDouble));
  CHECK_THROWS_WITH(s.merge(t), Contains("dimension 3") && Contains("got 4"));

  const at::Tensor x = at::zeros({10, 3}, at::kDouble), y = at::zeros({8, 3}, at::kDouble);
  CHECK_THROWS_WITH(kernel_inception_distance(x, at::zeros({8, 2}, at::kDouble), 1, 4, 0),
                    Contains("feature dimensions differ"));
  CHECK_THROWS_WITH(kernel_inception_distance(x, y, 1, 9, 0),
                    Contains("subset_size <= min(n_x, n_y) = 8") && Contains("got 9"));
  CHECK_THROWS_WITH(kernel_inception_distance(x, y, 1, 1, 0), Contains("subset_size >= 2"));
  CHECK_THROWS_WITH(kernel_inception_distance(x, y, 0, 4, 0), Contains("subsets >= 1"));
  CHECK_THROWS_AS(kernel_inception_distance(x, y, -3, 4, 0), std::invalid_argument);
}

TEST_CASE("kernel density: Scott's bandwidth, the smoothed Gaussian's density, bad input",
          "[metrics][kde]") {
  // For N(0, diag(1, 4)) samples the estimate at x is, in expectation, the density of
  // N(0, diag(1 + hx^2, 4 + hy^2)) at x (the data convolved with the kernel), h = n^(-1/6) std.
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
  const int64_t n = 20000;
  at::Tensor x = at::randn({n, 2}, g, at::kDouble);
  x.select(1, 1).mul_(2.0);
  x[0][0] = NAN;  // dropped
  const KernelDensity2D kde(x);
  CHECK(kde.size() == n - 1);
  const double bw = std::pow(static_cast<double>(n - 1), -1.0 / 6.0);
  CHECK(kde.bandwidth_x() == Approx(bw).epsilon(0.02));
  CHECK(kde.bandwidth_y() == Approx(2 * bw).epsilon(0.02));
  const double vx = 1 + kde.bandwidth_x() * kde.bandwidth_x();
  const double vy = 4 + kde.bandwidth_y() * kde.bandwidth_y();
  for (const auto& [u, v] : {std::pair{0.0, 0.0}, std::pair{1.0, -1.5}, std::pair{-0.5, 2.0}}) {
    const double want = -std::log(2 * M_PI * std::sqrt(vx * vy)) - 0.5 * (u * u / vx + v * v / vy);
    // Var p_hat ~ p R(K) / (n hx hy), R(K) = 1 / (4 pi) for the 2-D Gaussian kernel: the
    // relative standard error of p_hat, and so the standard error of log p_hat.
    const double se = std::sqrt(1.0 / (4 * M_PI * static_cast<double>(n) * kde.bandwidth_x() *
                                       kde.bandwidth_y() * std::exp(want)));
    INFO("at (" << u << ", " << v << "): SE " << se);
    CHECK(kde.log_density(u, v) == Approx(want).margin(4 * se));
  }
  CHECK_THROWS_WITH(KernelDensity2D(at::zeros({3, 3})), Catch::Contains("[n, 2]"));
  CHECK_THROWS_WITH(KernelDensity2D(at::full({2, 2}, NAN)), Catch::Contains("no finite"));
}
