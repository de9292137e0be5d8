// Order fitting recovers known slopes from synthetic error data.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "experiments/order_fit.hpp"

using namespace sdekit;

namespace {
std::vector<double> log_spaced(double lo, double hi, int n) {
  std::vector<double> v;
  for (int i = 0; i < n; ++i) v.push_back(std::round(lo * std::pow(hi / lo, i / (n - 1.0))));
  return v;
}
}  // namespace

TEST_CASE("an exact power law gives its order with zero standard error", "[order-fit]") {
  const auto nfe = log_spaced(5, 200, 8);
  for (double p : {1.0, 2.0, 3.0, 4.5}) {
    std::vector<double> err;
    for (double n : nfe) err.push_back(3.0 * std::pow(n, -p));
    const OrderFit f = fit_order(nfe, err, 0, nfe.size() - 1);
    CHECK(f.order == Approx(p).epsilon(1e-12));
    CHECK(f.intercept == Approx(std::log(3.0)).epsilon(1e-12));
    CHECK(f.std_error < 1e-12);
    CHECK(fit_order_auto(nfe, err).points() == nfe.size());
  }
}

TEST_CASE("noisy power laws: the slope lies within its stated standard error", "[order-fit]") {
  // log e = c - p log n + 0.05 N(0,1): the fitted p is unbiased with true standard error
  // 0.05 / sqrt(Sxx). Over 200 draws: every fit within 4.5 true SE (Gaussian tail 7e-6 per draw),
  // the mean of the stated SEs within 10% of the true SE, the scatter of the fits within 20%.
  const auto nfe = log_spaced(5, 400, 10);
  double mx = 0, sxx = 0;
  for (double n : nfe) mx += std::log(n) / static_cast<double>(nfe.size());
  for (double n : nfe) sxx += (std::log(n) - mx) * (std::log(n) - mx);
  const double true_se = 0.05 / std::sqrt(sxx);
  std::mt19937_64 rng(11);
  std::normal_distribution<double> noise(0.0, 0.05);
  double sum = 0, sum2 = 0, se_mean = 0;
  const int draws = 200;
  for (int d = 0; d < draws; ++d) {
    std::vector<double> err;
    for (double n : nfe) err.push_back(std::exp(1.0 - 2.0 * std::log(n) + noise(rng)));
    const OrderFit f = fit_order(nfe, err, 0, nfe.size() - 1);
    CHECK(std::abs(f.order - 2.0) < 4.5 * true_se);
    sum += f.order;
    sum2 += f.order * f.order;
    se_mean += f.std_error / draws;
  }
  const double sd = std::sqrt(sum2 / draws - (sum / draws) * (sum / draws));
  CHECK(se_mean == Approx(true_se).epsilon(0.1));
  CHECK(sd == Approx(true_se).epsilon(0.2));
}

TEST_CASE("the automatic range skips the pre-asymptotic start and the reference floor",
          "[order-fit]") {
  // e(n) = min(0.5, 400 n^-3) + 1e-8: saturated at small NFE (mode switching), third order in the
  // middle, flattening onto the reference's floor 1e-8 at the end.
  const auto nfe = log_spaced(4, 4000, 16);
  std::vector<double> err;
  for (double n : nfe) err.push_back(std::min(0.5, 400.0 * std::pow(n, -3.0)) + 1e-8);
  const OrderFit naive = fit_order(nfe, err, 0, nfe.size() - 1);
  CHECK(naive.order < 2.9);  // a fit over everything is off
  const OrderFit f = fit_order_auto(nfe, err, 1e-8);
  INFO("range " << f.first << ".." << f.last << ", order " << f.order);
  CHECK(f.order == Approx(3.0).margin(0.05));
  CHECK(nfe[f.first] > std::cbrt(400.0 / 0.5));  // past the saturation knee
  CHECK(err[f.last] > 10 * 1e-8);                // above the floor
  CHECK(f.points() >= 3);
}

TEST_CASE("bad input to the order fit names the problem", "[order-fit][errors]") {
  CHECK_THROWS_WITH(fit_order({1, 2, 3}, {1, 2}, 0, 1),
                    Catch::Contains("3 NFE values but 2 errors"));
  CHECK_THROWS_WITH(fit_order({1, 2}, {1, 0}, 0, 1),
                    Catch::Contains("err[1] must be finite and > 0"));
  CHECK_THROWS_WITH(fit_order({2, 1}, {1, 1}, 0, 1), Catch::Contains("must increase"));
  CHECK_THROWS_WITH(fit_order({1, 2, 3}, {1, 2, 3}, 1, 1), Catch::Contains("at least 2"));
  CHECK_THROWS_WITH(fit_order_auto({1}, {1}), Catch::Contains("at least 2 points"));
}
