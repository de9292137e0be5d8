// iPNDM, iPNDM-v and DEIS tAB (solvers/ipndm.cpp, solvers/deis.cpp; docs/theory.md section 4.18):
// their coefficients against the equal-step Adams-Bashforth tables, the exact Lagrange integrals
// and diff-sampler's DEIS coefficients, and their orders on the closed-form Gaussian PF-ODE flow.
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
using sdekit::test::fitted_order;
using sdekit::test::GaussianCase;
using sdekit::test::make_gaussian;
using sdekit::test::rms;

namespace {

// integral_a^b of the Lagrange basis polynomial j on nodes[0..p), by 3-point Gauss-Legendre
// (exact for p <= 4).
double lagrange_integral(const std::array<double, 4>& nodes, int p, int j, double a, double b) {
  const double x[3] = {-std::sqrt(0.6), 0.0, std::sqrt(0.6)}, w[3] = {5.0 / 9, 8.0 / 9, 5.0 / 9};
  double sum = 0;
  for (int q = 0; q < 3; ++q) {
    const double tau = 0.5 * (a + b) + 0.5 * (b - a) * x[q];
    double l = 1;
    for (int m = 0; m < p; ++m)
      if (m != j) l *= (tau - nodes[size_t(m)]) / (nodes[size_t(j)] - nodes[size_t(m)]);
    sum += w[q] * l;
  }
  return 0.5 * (b - a) * sum;
}

}  // namespace

TEST_CASE("ipndm-v: equal steps give the Adams-Bashforth tables (order 4: diff-sampler's form)",
          "[ipndm]") {
  const double h = -0.1;
  auto c2 = ipndm_v_coefficients(2, h, h, h, h);
  CHECK(c2[0] == Approx(1.5).margin(1e-15));
  CHECK(c2[1] == Approx(-0.5).margin(1e-15));
  auto c3 = ipndm_v_coefficients(3, h, h, h, h);
  const double ab3[3] = {23.0 / 12, -16.0 / 12, 5.0 / 12};
  for (int j = 0; j < 3; ++j) CHECK(c3[size_t(j)] == Approx(ab3[j]).margin(1e-14));
  auto c4 = ipndm_v_coefficients(4, h, h, h, h);
  const double v4[4] = {57.0 / 24, -65.0 / 24, 43.0 / 24, -11.0 / 24};
  for (int j = 0; j < 4; ++j) CHECK(c4[size_t(j)] == Approx(v4[j]).margin(1e-14));
  // Variable steps: order 2 is the exact variable-step AB2; every order sums to 1 (consistency).
  const double hh = -0.3, h1 = -0.25, h2 = -0.2, h3 = -0.15;
  const std::array<double, 4> nodes = {0.0, -h1, -h1 - h2, -h1 - h2 - h3};
  auto v2 = ipndm_v_coefficients(2, hh, h1, h2, h3);
  for (int j = 0; j < 2; ++j)
    CHECK(v2[size_t(j)] * hh == Approx(lagrange_integral(nodes, 2, j, 0.0, hh)).margin(1e-14));
  for (int p = 1; p <= 3; ++p) {
    auto c = ipndm_v_coefficients(p, hh, h1, h2, h3);
    CHECK(c[0] + c[1] + c[2] + c[3] == Approx(1.0).margin(1e-13));
  }
  // diff-sampler's order-4 form sums to 1 + T2 R (h2 / h3 - h1 / h2): 1 on equal and on geometric
  // steps (a uniform-lambda grid), not on others (section 4.18).
  auto c = ipndm_v_coefficients(4, hh, h1, h2, h3);
  const double R = h1 * (h1 + h2) / (h2 * (h2 + h3));
  const double T2 =
      (0.5 * (1 - hh / (3 * (hh + h1))) + (1 - hh / (2 * (hh + h1))) * hh / (6 * (hh + h1 + h2))) *
      hh * (hh + h1) * (hh + h1 + h2) / (h1 * (h1 + h2) * (h1 + h2 + h3));
  CHECK(c[0] + c[1] + c[2] + c[3] == Approx(1.0 + T2 * R * (h2 / h3 - h1 / h2)).margin(1e-13));
  const double q = 0.8;
  auto g4 = ipndm_v_coefficients(4, hh, hh / q, hh / (q * q), hh / (q * q * q));
  CHECK(g4[0] + g4[1] + g4[2] + g4[3] == Approx(1.0).margin(1e-13));
}

TEST_CASE(
    "DEIS coefficients: exact Lagrange integrals for sigma~ linear in t, diff-sampler's values",
    "[deis]") {
  // sigma~(t) = 2 t + 1: C_j = 2 integral L_j.
  const std::array<double, 4> nodes = {0.5, 0.62, 0.8, 0.9};
  for (int p = 1; p <= 4; ++p) {
    const auto c = deis_coefficients([](double t) { return 2 * t + 1; }, nodes, p, 0.5, 0.3);
    for (int j = 0; j < p; ++j)
      CHECK(c[size_t(j)] == Approx(2 * lagrange_integral(nodes, p, j, 0.5, 0.3)).margin(1e-13));
  }
  // diff-sampler's DEIS on EDM (sigma from 80 to 0.002) polynomials in the time of the VP-linear
  // SDE fitted to that range, sigma~(tau) = sqrt(exp(beta_d tau^2 / 2 + beta_min tau) - 1), on
  // its time-uniform grid (rho = 2, 6 points), max order 4. Its coefficients, from a 10000-point
  // rule, agree with exact quadrature to about 1e-5 relative.
  const double A = std::log(80.0 * 80.0 + 1), B = std::log(0.002 * 0.002 + 1), eps = 1e-3;
  const double bd = 2 * (B / eps - A) / (eps - 1), bmin = A - bd / 2;
  auto sig = [&](double tau) { return std::sqrt(std::exp(0.5 * bd * tau * tau + bmin * tau) - 1); };
  auto tau_of = [&](double s) {
    return (std::sqrt(bmin * bmin + 2 * bd * std::log(s * s + 1)) - bmin) / bd;
  };
  const std::vector<double> grid = {80, 6.29234, 1.559965, 0.556002, 0.150343, 0.002};
  const std::vector<std::vector<double>> ref = {{-6.097541, 1.365035},
                                                {-1.53301, 0.691381, -0.162341},
                                                {-0.650824, 0.361492, -0.137808, 0.021479},
                                                {-0.200829, 0.070497, -0.02068, 0.002669}};
  for (size_t i = 1; i < 5; ++i) {
    const int p = int(std::min<size_t>(i + 1, 4));
    std::array<double, 4> nd{};
    for (int j = 0; j < p; ++j) nd[size_t(j)] = tau_of(grid[i - size_t(j)]);
    const auto c = deis_coefficients(sig, nd, p, tau_of(grid[i]), tau_of(grid[i + 1]));
    for (int j = 0; j < p; ++j) {
      INFO("step " << i << ", coefficient " << j);
      CHECK(c[size_t(j)] == Approx(ref[i - 1][size_t(j)]).epsilon(2e-4).margin(2e-6));
    }
  }
}

TEST_CASE("ipndm, ipndm-v and DEIS reach their declared orders on the Gaussian PF-ODE flow",
          "[ipndm][deis][order]") {
  const GaussianCase gc = make_gaussian();
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
  const at::Tensor xT = at::randn({64, 4}, g, at::kDouble);
  struct Case {
    const char* name;
    std::vector<int> steps;
  };
  // Step counts where each is asymptotic (ipndm-v's order 3 shows from a few hundred steps: 2.6
  // over 64..256).
  const std::vector<Case> cases = {{"ipndm", {32, 48, 64, 96, 128}},
                                   {"ipndm-v", {256, 384, 512, 768, 1024}},
                                   {"deis-1", {64, 96, 128, 192, 256}},
                                   {"deis-2", {64, 96, 128, 192, 256}},
                                   {"deis-3", {128, 192, 256, 384, 512}}};
  for (const char* sde_name : {"vp-linear", "edm"}) {
    const SDEPtr sde = make_sde(sde_name);
    const SchedulePtr k = sde->schedule();
    const double T = sde->domain().hi, t_end = sde->default_t_end();
    GaussianMixtureModel model(gc.mixture(), k);
    const at::Tensor exact = gc.flow(xT, *k, T, t_end);
    for (const auto& c : cases) {
      const auto sampler = make_sampler(c.name);
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
      INFO(sde_name << " " << c.name << ": fitted order " << p << ", declared " << sampler->order()
                    << ", errors " << err.front() << " .. " << err.back());
      CHECK(std::abs(p - sampler->order()) < 0.2);
    }
  }
}

TEST_CASE("res-multistep: the reference's phi-function update step for step, and order 2",
          "[res]") {
  // EDM (alpha = 1, t = -log sigma): the reference's loop, written from its published form:
  // first an Euler step in sigma, then with h = t_next - t, c2 = (t_prev - t) / h,
  // x = e^{-h} x + h ((phi1(-h) - phi2(-h) / c2) D + (phi2(-h) / c2) D_old),
  // phi1(z) = (e^z - 1) / z, phi2(z) = (phi1(z) - 1) / z.
  const GaussianCase gc = make_gaussian();
  const SDEPtr sde = make_sde("edm");
  const SchedulePtr k = sde->schedule();
  GaussianMixtureModel model(gc.mixture(), k, Param::X0);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(8);
  const at::Tensor xT = at::randn({16, 4}, g, at::kDouble) * 80.0;
  const std::vector<double> sig = {80.0, 20.0, 4.0, 0.9, 0.2, 0.002};
  SampleRequest r;
  r.model = &model;
  r.sde = sde.get();
  r.times = sig;  // EDM: t = sigma
  r.x_init = xT;
  const at::Tensor got = make_sampler("res-multistep")->run(r).x;
  auto phi1 = [](double z) { return std::expm1(z) / z; };
  auto phi2 = [&](double z) { return (phi1(z) - 1.0) / z; };
  at::Tensor x = xT.clone(), old;
  for (size_t i = 0; i + 1 < sig.size(); ++i) {
    const at::Tensor D = model.predict_at(x, sig[i]);
    if (i == 0) {
      x = x + (sig[i + 1] - sig[i]) * (x - D) / sig[i];
    } else {
      const double t = -std::log(sig[i]), tn = -std::log(sig[i + 1]), tp = -std::log(sig[i - 1]);
      const double h = tn - t, c2 = (tp - t) / h;
      const double b1 = phi1(-h) - phi2(-h) / c2, b2 = phi2(-h) / c2;
      x = std::exp(-h) * x + h * (b1 * D + b2 * old);
    }
    old = D;
  }
  CHECK((got - x).abs().max().item<double>() < 1e-12 * (1 + x.abs().max().item<double>()));

  at::Tensor x1 = at::randn({64, 4}, g, at::kDouble);
  for (const char* sde_name : {"vp-linear", "edm"}) {
    const SDEPtr s2 = make_sde(sde_name);
    const SchedulePtr k2 = s2->schedule();
    GaussianMixtureModel m2(gc.mixture(), k2);
    const double T = s2->domain().hi, t_end = s2->default_t_end();
    const at::Tensor x0 = x1 * s2->prior_std();
    const at::Tensor exact = gc.flow(x0, *k2, T, t_end);
    std::vector<double> nfe, err;
    for (int n : {16, 24, 32, 48, 64}) {
      SampleRequest q;
      q.model = &m2;
      q.sde = s2.get();
      q.times = make_time_grid(GridKind::UniformLambda, *k2, n, T, t_end);
      q.x_init = x0;
      const SampleResult res = make_sampler("res-multistep")->run(q);
      nfe.push_back(double(res.nfe));
      err.push_back(rms(res.x - exact));
    }
    const double p = fitted_order(nfe, err);
    INFO(sde_name << ": order " << p);
    CHECK(std::abs(p - 2.0) < 0.2);
  }
}
