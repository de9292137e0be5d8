// Tests for the schedules layer: noise schedules, the SDEs they define and time grids.
// Every expected value is computed here from the formulas of docs/theory.md sections 1-2 (or by an
// independent finite difference / product), never taken from the library's own output.
#include <catch2/catch.hpp>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "schedules/callback_schedule.hpp"
#include "schedules/edm.hpp"
#include "schedules/noise_schedule.hpp"
#include "schedules/registry.hpp"
#include "schedules/sde.hpp"
#include "schedules/sub_vp.hpp"
#include "schedules/time_grid.hpp"
#include "schedules/ve.hpp"
#include "schedules/vp_cosine.hpp"
#include "schedules/vp_discrete.hpp"
#include "schedules/vp_linear.hpp"

using namespace sdekit;
using Catch::Contains;

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kInf = std::numeric_limits<double>::infinity();

// Default parameters of docs/theory.md section 1.
constexpr double kB0 = 0.1, kB1 = 20.0;          // VP linear / sub-VP beta(t) = b0 + t (b1 - b0)
constexpr double kCosS = 0.008, kCosT = 0.9946;  // VP cosine
constexpr double kVeMin = 0.01, kVeMax = 50.0;   // VE
constexpr double kEdmMin = 0.002, kEdmMax = 80.0;
constexpr int kDdpmN = 1000;

// Both the type and the message of an exception.
#define REQUIRE_INVALID(expr, text)                 \
  do {                                              \
    REQUIRE_THROWS_AS(expr, std::invalid_argument); \
    REQUIRE_THROWS_WITH(expr, Contains(text));      \
  } while (false)

bool close(double got, double want, double rtol, double atol = 0.0) {
  return std::abs(got - want) <= std::max(atol, rtol * std::max(std::abs(got), std::abs(want)));
}

// ---- Independent closed forms (docs/theory.md section 1 table, section 2) ----
double beta_lin(double t) {
  return kB0 + t * (kB1 - kB0);
}
double B_lin(double t) {
  return 0.5 * t * t * (kB1 - kB0) + t * kB0;
}  // int_0^t beta

double ddpm_beta(int j) {  // beta_j, j = 1..N, linear 1e-4 .. 0.02
  return 1e-4 + (0.02 - 1e-4) * (j - 1) / (kDdpmN - 1.0);
}

struct Closed {
  double alpha, sigma, f, g2;
};

// Closed form of a built-in schedule at t (for vp-discrete only alpha/sigma at knots and f, g2
// inside segments are meaningful; handled separately).
Closed closed_form(const std::string& name, double t) {
  if (name == "vp-linear") {
    const double la = -t * t * (kB1 - kB0) / 4.0 - t * kB0 / 2.0;
    // sigma^2 = 1 - alpha^2 = 1 - exp(-B): use expm1 to avoid cancellation at small t.
    return {std::exp(la), std::sqrt(-std::expm1(-B_lin(t))), -beta_lin(t) / 2.0, beta_lin(t)};
  }
  if (name == "vp-cosine") {
    const double th = (t + kCosS) / (1.0 + kCosS) * kPi / 2.0;
    const double th0 = kCosS / (1.0 + kCosS) * kPi / 2.0;
    const double abar = std::pow(std::cos(th), 2) / std::pow(std::cos(th0), 2);
    // 1 - abar = (cos^2 th0 - cos^2 th) / cos^2 th0 = sin(th - th0) sin(th + th0) / cos^2 th0.
    const double one_minus = std::sin(th - th0) * std::sin(th + th0) / std::pow(std::cos(th0), 2);
    // f = d/dt log sqrt(abar) = -tan(th) dth/dt; VP: g2 = beta = -2 f.
    const double f = -std::tan(th) * kPi / (2.0 * (1.0 + kCosS));
    return {std::sqrt(abar), std::sqrt(one_minus), f, -2.0 * f};
  }
  if (name == "sub-vp") {
    const double B = B_lin(t);
    return {std::exp(-B / 2.0), 1.0 - std::exp(-B), -beta_lin(t) / 2.0,
            beta_lin(t) * (1.0 - std::exp(-2.0 * B))};
  }
  if (name == "ve") {
    const double s = kVeMin * std::pow(kVeMax / kVeMin, t);
    const double g = s * std::sqrt(2.0 * std::log(kVeMax / kVeMin));
    return {1.0, s, 0.0, g * g};
  }
  if (name == "edm") return {1.0, t, 0.0, 2.0 * t};
  if (name == "flow" || name == "flow:shift=3") {
    // u = s t / (1 + (s - 1) t), alpha = 1 - u, sigma = u; f = -u' / (1 - u), g2 = d u^2/dt - 2 f
    // u^2 = 2 u u' / (1 - u).
    const double sh = name == "flow" ? 1.0 : 3.0, u = sh * t / (1 + (sh - 1) * t),
                 du = sh / std::pow(1 + (sh - 1) * t, 2);
    return {1.0 - u, u, -du / (1.0 - u), 2.0 * u * du / (1.0 - u)};
  }
  throw std::logic_error("no closed form for " + name);
}

// Five-point central difference with a step chosen here, inside [lo, hi].
template <class Fn>
double central_diff(Fn fn, double t, double lo, double hi, double h) {
  h = std::min({h, (t - lo) / 2.5, (hi - t) / 2.5});
  return (fn(t - 2 * h) - 8 * fn(t - h) + 8 * fn(t + h) - fn(t + 2 * h)) / (12 * h);
}

// f = d log alpha / dt and g2 = d sigma^2 / dt - 2 f sigma^2 by finite differences.
std::pair<double, double> fd_f_g2(const NoiseSchedule& s, double t, double h) {
  const Interval d = s.domain();
  const double f = central_diff([&](double u) { return std::log(s.alpha(u)); }, t, d.lo, d.hi, h);
  const double ds2 = central_diff(
      [&](double u) {
        const double su = s.sigma(u);
        return su * su;
      },
      t, d.lo, d.hi, h);
  const double sg = s.sigma(t);
  return {f, ds2 - 2.0 * f * sg * sg};
}

// A spread of interior times (away from the ends of the domain).
std::vector<double> interior_times(const NoiseSchedule& s) {
  const Interval d = s.domain();
  std::vector<double> ts = {s.default_t_end(), 3.0 * s.default_t_end()};
  for (double u : {0.01, 0.05, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.97, 0.99})
    ts.push_back(d.lo + u * (d.hi - d.lo));
  return ts;
}

// A user schedule that recreates vp-linear from alpha and sigma callbacks.
std::shared_ptr<CallbackSchedule> callback_vp_linear(double t_end = 1e-3) {
  CallbackSchedule::Spec spec;
  spec.name = "cb-vp-linear";
  spec.domain = {0.0, 1.0};
  spec.t_end = t_end;
  spec.alpha = [](double t) { return std::exp(-t * t * (kB1 - kB0) / 4.0 - t * kB0 / 2.0); };
  spec.sigma = [](double t) { return std::sqrt(-std::expm1(-B_lin(t))); };
  return std::make_shared<CallbackSchedule>(spec);
}

std::shared_ptr<CallbackSchedule> callback_sub_vp() {
  CallbackSchedule::Spec spec;
  spec.name = "cb-sub-vp";
  spec.alpha = [](double t) { return std::exp(-B_lin(t) / 2.0); };
  spec.sigma = [](double t) { return -std::expm1(-B_lin(t)); };
  return std::make_shared<CallbackSchedule>(spec);
}

std::shared_ptr<CallbackSchedule> callback_edm() {
  CallbackSchedule::Spec spec;
  spec.name = "cb-edm";
  spec.domain = {0.0, kEdmMax};
  spec.t_end = kEdmMin;
  spec.alpha = [](double) { return 1.0; };
  spec.sigma = [](double t) { return t; };
  return std::make_shared<CallbackSchedule>(spec);
}

// VE through callbacks: lambda(lo) is finite, the other branch of the generic inverse.
std::shared_ptr<CallbackSchedule> callback_ve() {
  CallbackSchedule::Spec spec;
  spec.name = "cb-ve";
  spec.t_end = 1e-5;
  spec.alpha = [](double) { return 1.0; };
  spec.sigma = [](double t) { return kVeMin * std::pow(kVeMax / kVeMin, t); };
  return std::make_shared<CallbackSchedule>(spec);
}

std::vector<SchedulePtr> all_builtin() {
  std::vector<SchedulePtr> v;
  for (const auto& info : schedule_registry()) v.push_back(info.make());
  v.push_back(make_schedule("flow:shift=3"));
  return v;
}

std::vector<SchedulePtr> all_with_callbacks() {
  auto v = all_builtin();
  v.push_back(callback_vp_linear());
  v.push_back(callback_sub_vp());
  v.push_back(callback_edm());
  v.push_back(callback_ve());
  return v;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// 1. f, g2, alpha, sigma
// ---------------------------------------------------------------------------------------------

TEST_CASE("registry holds the eight built-in schedules under their names", "[schedules]") {
  const std::vector<std::string> want = {"vp-linear", "vp-cosine", "vp-discrete", "vp-sd",
                                         "sub-vp",    "ve",        "edm",         "flow"};
  const auto& reg = schedule_registry();
  REQUIRE(reg.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    CHECK(reg[i].name == want[i]);
    const auto s = make_schedule(want[i]);
    REQUIRE(s);
    CHECK(s->name() == want[i]);
    const auto sde = make_sde(want[i]);
    CHECK(sde->name() == want[i]);
    CHECK(sde->schedule()->name() == want[i]);
  }
  // Domains and default end times of docs/theory.md section 1.
  struct Dom {
    const char* name;
    double lo, hi, t_end;
  };
  for (const Dom& d : {Dom{"vp-linear", 0.0, 1.0, 1e-3}, Dom{"vp-cosine", 0.0, kCosT, 1e-3},
                       Dom{"vp-discrete", 0.0, 1.0, 1.0 / kDdpmN}, Dom{"vp-sd", 0.0, 1.0, 1e-3},
                       Dom{"sub-vp", 0.0, 1.0, 1e-3}, Dom{"ve", 0.0, 1.0, 1e-5},
                       Dom{"edm", 0.0, kEdmMax, kEdmMin}, Dom{"flow", 0.0, 0.999, 1e-3}}) {
    const auto s = make_schedule(d.name);
    INFO(d.name);
    CHECK(s->domain().lo == d.lo);
    CHECK(s->domain().hi == d.hi);
    CHECK(s->default_t_end() == d.t_end);
  }
}

TEST_CASE("f and g2 match finite differences of log alpha and sigma^2", "[schedules]") {
  for (const auto& s : all_builtin()) {
    const Interval d = s->domain();
    if (s->name() == "vp-discrete" || s->name() == "vp-sd") {
      // f is piecewise constant: evaluate mid-segment with a step well inside the segment.
      const int N = kDdpmN;
      for (int n : {0, 1, 2, 10, 99, 250, 500, 777, 998, 999}) {
        const double t = (n + 0.5) / N;
        const auto fd = fd_f_g2(*s, t, 0.1 / N);
        INFO(s->name() << " t = " << t);
        CHECK(close(s->f(t), fd.first, 1e-6));
        CHECK(close(s->g2(t), fd.second, 1e-6));
      }
      continue;
    }
    for (double t : interior_times(*s)) {
      const double h = 1e-4 * std::max(t, 1e-3 * (d.hi - d.lo));
      const auto fd = fd_f_g2(*s, t, h);
      INFO(s->name() << " t = " << t << " f = " << s->f(t) << " fd = " << fd.first
                     << " g2 = " << s->g2(t) << " fd = " << fd.second);
      CHECK(close(s->f(t), fd.first, 1e-6, 1e-12));
      CHECK(close(s->g2(t), fd.second, 1e-6, 1e-12));
    }
  }
}

TEST_CASE("f, g2, alpha and sigma match the closed forms of docs/theory.md", "[schedules]") {
  for (const auto& s : all_builtin()) {
    if (s->name() == "vp-discrete" || s->name() == "vp-sd") continue;  // own tests below
    const Interval d = s->domain();
    std::vector<double> ts = interior_times(*s);
    ts.push_back(d.hi);
    for (double t : ts) {
      const Closed c = closed_form(s->name(), t);
      INFO(s->name() << " t = " << t);
      CHECK(close(s->alpha(t), c.alpha, 1e-12));
      CHECK(close(s->log_alpha(t), std::log(c.alpha), 1e-12, 1e-15));
      CHECK(close(s->sigma(t), c.sigma, 1e-12));
      CHECK(close(s->log_sigma(t), std::log(c.sigma), 1e-12, 1e-13));
      CHECK(close(s->lambda(t), std::log(c.alpha / c.sigma), 1e-12, 1e-12));
      CHECK(close(s->f(t), c.f, 1e-12, 1e-15));
      CHECK(close(s->g2(t), c.g2, 1e-12));
    }
  }
  // The named section-2 statements, one by one.
  const VPLinear vpl;
  const VE ve;
  const SubVP svp;
  const EDM edm;
  for (double t : {0.0, 1e-3, 0.3, 0.7, 1.0}) {
    CHECK(close(vpl.f(t), -vpl.beta(t) / 2.0, 1e-14));
    CHECK(close(vpl.g2(t), beta_lin(t), 1e-14));
    const double g_ve = ve.sigma(t) * std::sqrt(2.0 * std::log(kVeMax / kVeMin));
    CHECK(close(std::sqrt(ve.g2(t)), g_ve, 1e-13));
    CHECK(ve.f(t) == 0.0);
    CHECK(close(svp.g2(t), beta_lin(t) * (1.0 - std::exp(-2.0 * B_lin(t))), 1e-13, 1e-300));
    CHECK(svp.f(t) == Approx(-beta_lin(t) / 2.0).epsilon(1e-14));
  }
  for (double t : {0.0, 0.002, 1.0, 80.0}) {
    CHECK(edm.f(t) == 0.0);
    CHECK(close(edm.g2(t), 2.0 * t, 1e-15));
    CHECK(close(std::sqrt(edm.g2(t)), std::sqrt(2.0 * t), 1e-15));
  }
  // VP schedules are variance preserving: alpha^2 + sigma^2 = 1; sub-VP is not.
  for (const char* name : {"vp-linear", "vp-cosine", "vp-discrete"}) {
    const auto s = make_schedule(name);
    for (double t : {0.001, 0.2, 0.5, 0.9})
      CHECK(close(s->alpha(t) * s->alpha(t) + s->sigma(t) * s->sigma(t), 1.0, 1e-14));
  }
  CHECK(svp.alpha(0.5) * svp.alpha(0.5) + svp.sigma(0.5) * svp.sigma(0.5) < 1.0 - 1e-3);
}

TEST_CASE("vp-discrete: DDPM table, alpha_bar products, knots and segment slopes",
          "[schedules][vp-discrete]") {
  const VPDiscrete s = VPDiscrete::linear();
  REQUIRE(s.steps() == kDdpmN);
  CHECK(s.beta(1) == Approx(1e-4).epsilon(1e-15));
  CHECK(s.beta(kDdpmN) == Approx(0.02).epsilon(1e-15));
  CHECK(s.default_t_end() == 1.0 / kDdpmN);
  CHECK(s.domain().lo == 0.0);
  CHECK(s.domain().hi == 1.0);

  // alpha_bar(n) = prod_{j<=n} (1 - beta_j), computed here.
  double prod = 1.0;
  double sum_log = 0.0;  // sum_{j<=n} log(1 - beta_j)
  CHECK(s.alpha_bar(0) == 1.0);
  CHECK(s.log_alpha(0.0) == 0.0);
  for (int n = 1; n <= kDdpmN; ++n) {
    const double b = ddpm_beta(n);
    CHECK(close(s.beta(n), b, 1e-14));
    prod *= 1.0 - b;
    sum_log += std::log1p(-b);
    INFO("n = " << n);
    CHECK(close(s.alpha_bar(n), prod, 1e-12));
    // Knot t = n/N is exact: log alpha = (1/2) sum log(1 - beta_j).
    const double t = static_cast<double>(n) / kDdpmN;
    CHECK(close(s.log_alpha(t), 0.5 * sum_log, 1e-12));
    CHECK(close(s.alpha(t), std::sqrt(prod), 1e-12));
    CHECK(close(s.sigma(t), std::sqrt(1.0 - prod), 1e-10));
    // Segment (n-1)/N .. n/N: f is its slope N * (1/2) log(1 - beta_n), g2 = -2 f = beta.
    const double slope = kDdpmN * 0.5 * std::log1p(-b);
    const double mid = (n - 0.5) / kDdpmN;
    CHECK(close(s.f(mid), slope, 1e-12));
    CHECK(close(s.g2(mid), -2.0 * slope, 1e-12));
    // Piecewise linear in between: at the midpoint, the mean of the knot values.
    CHECK(close(s.log_alpha(mid), 0.5 * sum_log - 0.25 * std::log1p(-b), 1e-12));
  }
  CHECK(close(s.alpha_bar(kDdpmN), prod, 1e-12));
  CHECK_THROWS_AS(s.alpha_bar(kDdpmN + 1), std::out_of_range);

  // A custom table of three betas.
  const VPDiscrete c({0.1, 0.2, 0.5});
  REQUIRE(c.steps() == 3);
  CHECK(close(c.alpha_bar(3), 0.9 * 0.8 * 0.5, 1e-15));
  CHECK(close(c.alpha(2.0 / 3.0), std::sqrt(0.9 * 0.8), 1e-15));
  CHECK(close(c.log_alpha(0.5), 0.5 * (std::log(0.9) + 0.5 * std::log(0.8)), 1e-14));
  CHECK(close(c.f(0.9), 1.5 * std::log(0.5), 1e-14));
}

// ---------------------------------------------------------------------------------------------
// 2. lambda and its inverse
// ---------------------------------------------------------------------------------------------

TEST_CASE("t_of_lambda inverts lambda on [t_end, T] for every schedule", "[schedules][lambda]") {
  for (const auto& s : all_with_callbacks()) {
    const Interval d = s->domain();
    const double a = s->default_t_end(), b = d.hi;
    std::vector<double> ts;
    const int M = 200;
    for (int i = 0; i <= M; ++i) {
      ts.push_back(a + (b - a) * i / M);                 // uniform
      ts.push_back(a * std::pow(b / a, double(i) / M));  // geometric (dense near t_end)
    }
    if (s->name() == "vp-discrete" || s->name() == "vp-sd")
      for (int n = 1; n <= kDdpmN; n += 37) ts.push_back(double(n) / kDdpmN);  // knots
    for (double t : ts) {
      t = std::min(std::max(t, a), b);
      const double lam = s->lambda(t);
      const double back = s->t_of_lambda(lam);
      INFO(s->name() << " t = " << t << " lambda = " << lam << " back = " << back);
      CHECK(close(back, t, 1e-12, t < 1e-3 ? 1e-12 : 0.0));
    }
  }
}

TEST_CASE("lambda is strictly decreasing and t_of_lambda clamps at the ends",
          "[schedules][lambda]") {
  for (const auto& s : all_with_callbacks()) {
    const Interval d = s->domain();
    INFO(s->name());
    double prev = s->lambda(d.lo);
    for (int i = 1; i <= 2000; ++i) {
      const double t = d.lo + (d.hi - d.lo) * i / 2000.0;
      const double lam = s->lambda(t);
      REQUIRE(std::isfinite(lam));
      INFO("t = " << t);
      REQUIRE(lam < prev);
      prev = lam;
    }
    // Beyond the range of lambda on the domain the inverse clamps to the domain ends.
    // (lambda = 1e3 is still inside the range when lambda(lo) = +inf: its inverse is lo to
    // within double precision; exactly lo for +inf.)
    for (double big : {1e3, 1e6}) {
      const double back = s->t_of_lambda(big);
      CHECK(back >= d.lo);
      CHECK(back <= d.lo + 1e-300);
    }
    CHECK(s->t_of_lambda(kInf) == d.lo);
    for (double small : {-1e3, -1e6, -kInf}) CHECK(s->t_of_lambda(small) == d.hi);
    CHECK(s->t_of_lambda(s->lambda(d.hi) - 1.0) == d.hi);
  }
  // sigma(0) = 0 for VP, sub-VP and EDM: lambda(0) = +inf; VE has sigma(0) = sigma_min.
  for (const char* name : {"vp-linear", "vp-cosine", "vp-discrete", "sub-vp", "edm"}) {
    const auto s = make_schedule(name);
    INFO(name);
    CHECK(s->sigma(0.0) == 0.0);
    CHECK(s->lambda(0.0) == kInf);
    CHECK(s->t_of_lambda(s->lambda(0.0)) == 0.0);
  }
  CHECK(callback_vp_linear()->lambda(0.0) == kInf);
  const auto ve = make_schedule("ve");
  CHECK(close(ve->lambda(0.0), -std::log(kVeMin), 1e-15));
  CHECK(ve->t_of_lambda(-std::log(kVeMin) + 1.0) == 0.0);
}

TEST_CASE("CallbackSchedule recreating vp-linear matches VPLinear", "[schedules][callback]") {
  const auto cb = callback_vp_linear();
  const VPLinear ref;
  CHECK(cb->name() == "cb-vp-linear");
  CHECK(cb->default_t_end() == 1e-3);
  // Finite-difference f and g2 of the library against the closed form, including both ends
  // of the domain (one-sided differences there).
  std::vector<double> ts = {0.0, 1e-4, 1e-3, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999, 1.0};
  for (double t : ts) {
    INFO("t = " << t << " f = " << cb->f(t) << " g2 = " << cb->g2(t));
    CHECK(close(cb->f(t), -beta_lin(t) / 2.0, 1e-7));
    CHECK(close(cb->g2(t), beta_lin(t), 1e-7));
    CHECK(close(cb->alpha(t), ref.alpha(t), 1e-14));
    CHECK(close(cb->sigma(t), ref.sigma(t), 1e-14));
    if (t > 0) {
      CHECK(close(cb->lambda(t), ref.lambda(t), 1e-13, 1e-13));
      // Generic root solve against the closed-form inverse.
      CHECK(close(cb->t_of_lambda(ref.lambda(t)), t, 1e-12, 1e-15));
    }
  }
  // sub-VP, VE and EDM through callbacks: finite-difference g2 against the closed forms.
  const auto csv = callback_sub_vp();
  const auto cve = callback_ve();
  const auto ced = callback_edm();
  for (double u : {0.0, 0.001, 0.1, 0.5, 0.9, 1.0}) {
    INFO("u = " << u);
    const Closed c = closed_form("sub-vp", u);
    CHECK(close(csv->f(u), c.f, 1e-7));
    CHECK(close(csv->g2(u), c.g2, 1e-7, 1e-12));  // g2(0) = 0
    CHECK(close(cve->g2(u), closed_form("ve", u).g2, 1e-7));
    CHECK(std::abs(cve->f(u)) < 1e-12);
    const double t = u * kEdmMax;
    CHECK(close(ced->g2(t), 2.0 * t, 1e-7));
    CHECK(std::abs(ced->f(t)) < 1e-12);
  }
}

// ---------------------------------------------------------------------------------------------
// 4. SDEs
// ---------------------------------------------------------------------------------------------

namespace {
std::shared_ptr<CallbackSDE> callback_vp_sde() {
  CallbackSDE::Spec spec;
  spec.name = "user-vp";
  spec.domain = {0.0, 1.0};
  spec.t_end = 1e-3;
  spec.drift = [](const at::Tensor& x, double t) { return -0.5 * beta_lin(t) * x; };
  spec.diffusion = [](double t) { return std::sqrt(beta_lin(t)); };
  spec.alpha = [](double t) { return std::exp(-t * t * (kB1 - kB0) / 4.0 - t * kB0 / 2.0); };
  spec.sigma = [](double t) { return std::sqrt(-std::expm1(-B_lin(t))); };
  return std::make_shared<CallbackSDE>(spec);
}
}  // namespace

TEST_CASE("a CallbackSDE defining VP-linear matches AffineSDE(VPLinear)", "[schedules][sde]") {
  const auto user = callback_vp_sde();
  const AffineSDE ref(std::make_shared<VPLinear>());
  at::manual_seed(1234);
  const at::Tensor x = at::randn({5, 3}, at::kDouble);
  const at::Tensor score = at::randn({5, 3}, at::kDouble);

  CHECK(user->name() == "user-vp");
  CHECK(user->domain().lo == ref.domain().lo);
  CHECK(user->domain().hi == ref.domain().hi);
  CHECK(user->default_t_end() == ref.default_t_end());
  // prior: alpha_1^2 + sigma_1^2 = 1 for VP.
  CHECK(close(user->prior_std(), ref.prior_std(), 1e-12));
  CHECK(close(ref.prior_std(), 1.0, 1e-14));

  const auto ks = user->schedule();
  REQUIRE(ks);
  const auto rs = ref.schedule();
  for (double t : {0.0, 1e-3, 0.05, 0.25, 0.5, 0.75, 1.0}) {
    INFO("t = " << t);
    const double b = beta_lin(t);
    const double scale = x.abs().max().item<double>() + score.abs().max().item<double>() * b;
    CHECK(max_abs_diff(user->drift(x, t), ref.drift(x, t)) <= 1e-12 * scale);
    CHECK(close(user->g2(t), ref.g2(t), 1e-12));
    CHECK(close(user->diffusion(t), ref.diffusion(t), 1e-12));
    CHECK(close(ref.diffusion(t), std::sqrt(b), 1e-14));
    CHECK(max_abs_diff(user->reverse_drift(x, t, score), ref.reverse_drift(x, t, score)) <=
          1e-12 * scale);
    CHECK(max_abs_diff(user->pf_drift(x, t, score), ref.pf_drift(x, t, score)) <= 1e-12 * scale);
    // And both against section 2 written out here.
    CHECK(max_abs_diff(ref.reverse_drift(x, t, score), -0.5 * b * x - b * score) <= 1e-14 * scale);
    CHECK(max_abs_diff(ref.pf_drift(x, t, score), -0.5 * b * x - 0.5 * b * score) <= 1e-14 * scale);
    CHECK(close(ks->alpha(t), rs->alpha(t), 1e-12));
    CHECK(close(ks->sigma(t), rs->sigma(t), 1e-12));
    if (t > 0) CHECK(close(ks->lambda(t), rs->lambda(t), 1e-12, 1e-12));
  }
}

TEST_CASE("AffineSDE drift is f(t) x and g2 the schedule's", "[schedules][sde]") {
  at::manual_seed(7);
  const at::Tensor x = at::randn({4, 2}, at::kDouble);
  for (const auto& info : schedule_registry()) {
    const auto sde = make_sde(info.name);
    const auto s = sde->schedule();
    REQUIRE(s);
    const Interval d = s->domain();
    CHECK(sde->domain().lo == d.lo);
    CHECK(sde->domain().hi == d.hi);
    CHECK(sde->default_t_end() == s->default_t_end());
    const double aT = s->alpha(d.hi), sT = s->sigma(d.hi);
    CHECK(close(sde->prior_std(), std::sqrt(aT * aT + sT * sT), 1e-14));
    for (double u : {0.01, 0.3, 0.6, 0.95}) {
      const double t = d.lo + u * (d.hi - d.lo);
      INFO(info.name << " t = " << t);
      const double f = s->f(t);
      CHECK(max_abs_diff(sde->drift(x, t), f * x) <= 1e-15 * (1 + std::abs(f)));
      CHECK(sde->g2(t) == s->g2(t));
      CHECK(close(sde->diffusion(t), std::sqrt(s->g2(t)), 1e-15));
    }
  }
  // VE prior std: sqrt(1 + sigma_max^2).
  CHECK(close(make_sde("ve")->prior_std(), std::sqrt(1.0 + kVeMax * kVeMax), 1e-12));
}

TEST_CASE("CallbackSDE without a kernel uses the given prior std", "[schedules][sde]") {
  CallbackSDE::Spec spec;
  spec.name = "ou";
  spec.drift = [](const at::Tensor& x, double) { return -x; };
  spec.diffusion = [](double) { return std::sqrt(2.0); };
  spec.prior_std = 1.0;
  const CallbackSDE sde(spec);
  CHECK(sde.schedule() == nullptr);
  CHECK(sde.prior_std() == 1.0);
  CHECK(close(sde.g2(0.5), 2.0, 1e-15));
  const at::Tensor x = at::ones({3}, at::kDouble);
  CHECK(max_abs_diff(sde.drift(x, 0.5), -x) == 0.0);
}

// ---------------------------------------------------------------------------------------------
// 5. Time grids
// ---------------------------------------------------------------------------------------------

namespace {
void check_grid_shape(const std::vector<double>& g, int steps, double t_start, double t_end) {
  REQUIRE(g.size() == static_cast<size_t>(steps) + 1);
  CHECK(g.front() == t_start);
  CHECK(g.back() == t_end);
  for (size_t i = 1; i < g.size(); ++i) {
    INFO("i = " << i << " g[i-1] = " << g[i - 1] << " g[i] = " << g[i]);
    REQUIRE(g[i] < g[i - 1]);
  }
}
}  // namespace

TEST_CASE("continuous time grids: shape and spacing on every schedule", "[schedules][grid]") {
  for (const auto& s : all_with_callbacks()) {
    const double T = s->domain().hi, te = s->default_t_end();
    for (int steps : {1, 2, 7, 50}) {
      INFO(s->name() << " steps = " << steps);
      const double N = steps;
      {  // uniform in t
        const auto g = make_time_grid(GridKind::UniformT, *s, steps, T, te);
        check_grid_shape(g, steps, T, te);
        const double dt = (te - T) / N;
        for (int i = 1; i <= steps; ++i) CHECK(close(g[i] - g[i - 1], dt, 1e-10, 1e-14 * T));
      }
      {  // uniform in lambda
        const auto g = make_time_grid(GridKind::UniformLambda, *s, steps, T, te);
        check_grid_shape(g, steps, T, te);
        const double dl = (s->lambda(te) - s->lambda(T)) / N;
        for (int i = 1; i <= steps; ++i)
          CHECK(std::abs(s->lambda(g[i]) - s->lambda(g[i - 1]) - dl) <= 1e-10);
      }
      {  // uniform in sqrt(t)
        const auto g = make_time_grid(GridKind::Quadratic, *s, steps, T, te);
        check_grid_shape(g, steps, T, te);
        const double dr = (std::sqrt(te) - std::sqrt(T)) / N;
        for (int i = 1; i <= steps; ++i)
          CHECK(std::abs(std::sqrt(g[i]) - std::sqrt(g[i - 1]) - dr) <= 1e-12 * std::sqrt(T));
      }
      {  // Karras rho = 7 in s = sigma / alpha = exp(-lambda)
        const auto g = make_time_grid(GridKind::Karras, *s, steps, T, te);
        check_grid_shape(g, steps, T, te);
        const double rho = 7.0;
        const double a = std::pow(s->sigma(T) / s->alpha(T), 1.0 / rho);
        const double b = std::pow(s->sigma(te) / s->alpha(te), 1.0 / rho);
        for (int i = 0; i <= steps; ++i) {
          const double want = std::pow(a + (i / N) * (b - a), rho);
          CHECK(close(s->sigma(g[i]) / s->alpha(g[i]), want, 1e-10));
        }
      }
    }
  }
}

TEST_CASE("karras grid on EDM is the EDM sigma formula", "[schedules][grid]") {
  const auto edm = make_schedule("edm");
  CHECK(default_grid(*edm) == GridKind::Karras);
  for (const auto& info : schedule_registry())
    if (info.name != "edm") CHECK(default_grid(*info.make()) == GridKind::UniformT);
  for (double rho : {7.0, 3.0}) {
    for (int steps : {1, 18, 40}) {
      GridOptions opt;
      opt.rho = rho;
      const auto g = make_time_grid(GridKind::Karras, *edm, steps, kEdmMax, kEdmMin, opt);
      check_grid_shape(g, steps, kEdmMax, kEdmMin);
      const double a = std::pow(kEdmMax, 1.0 / rho), b = std::pow(kEdmMin, 1.0 / rho);
      for (int i = 0; i <= steps; ++i) {
        const double want = std::pow(a + double(i) / steps * (b - a), rho);
        INFO("rho = " << rho << " steps = " << steps << " i = " << i);
        CHECK(close(g[i], want, 1e-12));
      }
    }
  }
  // A sub-interval: t_start below T.
  const auto g = make_time_grid(GridKind::Karras, *edm, 10, 10.0, 0.01);
  const double a = std::pow(10.0, 1 / 7.0), b = std::pow(0.01, 1 / 7.0);
  for (int i = 0; i <= 10; ++i) CHECK(close(g[i], std::pow(a + i / 10.0 * (b - a), 7.0), 1e-12));
}

TEST_CASE("vp-sd: Stable Diffusion's scaled-linear table", "[schedules][vp-discrete]") {
  const auto s = make_schedule("vp-sd");
  const auto* d = dynamic_cast<const VPDiscrete*>(s.get());
  REQUIRE(d);
  REQUIRE(d->steps() == kDdpmN);
  // beta_n = (sqrt(0.00085) + (n - 1)/(N - 1) (sqrt(0.012) - sqrt(0.00085)))^2, computed here.
  double prod = 1.0;
  for (int n = 1; n <= kDdpmN; ++n) {
    const double r =
        std::sqrt(0.00085) + (n - 1.0) / (kDdpmN - 1.0) * (std::sqrt(0.012) - std::sqrt(0.00085));
    INFO("n = " << n);
    CHECK(close(d->beta(n), r * r, 1e-14));
    prod *= 1.0 - r * r;
    CHECK(close(d->alpha_bar(n), prod, 1e-12));
  }
  CHECK(s->default_t_end() == 1.0 / kDdpmN);
  // The sigma/alpha range every Stable Diffusion sampler reports: 0.0291672 .. 14.6146.
  CHECK(std::exp(-s->lambda(1.0)) == Approx(14.6146412293).epsilon(1e-10));
  CHECK(std::exp(-s->lambda(1.0 / kDdpmN)) == Approx(0.0291671582).epsilon(3e-9));  // 10 digits
  // DDPM's integer grids apply to it as to vp-discrete.
  const auto g = make_time_grid(GridKind::DdpmUniform, *s, 10, 1.0, 1.0 / kDdpmN);
  for (double t : g) CHECK(std::abs(t * kDdpmN - std::round(t * kDdpmN)) < 1e-9);
}

TEST_CASE("ddpm grids give integer knots n/N on vp-discrete", "[schedules][grid]") {
  const auto s = make_schedule("vp-discrete");
  const int N = kDdpmN;
  const double te = 1.0 / N;
  for (GridKind kind : {GridKind::DdpmUniform, GridKind::DdpmQuadratic}) {
    for (int steps : {1, 10, 50, 100, 500, 998, 999}) {
      INFO(grid_name(kind) << " steps = " << steps);
      const auto g = make_time_grid(kind, *s, steps, 1.0, te);
      check_grid_shape(g, steps, 1.0, te);
      for (double t : g) {
        const double n = t * N;
        CHECK(std::abs(n - std::round(n)) < 1e-9);
      }
    }
  }
  // Where rounding merges nothing, the knots are n = 1 + round(q(u) * 999), u = 1 - i/steps,
  // q(u) = u (uniform) or u^2 (quad).
  for (int steps : {3, 9, 10, 27}) {
    const auto gu = make_time_grid(GridKind::DdpmUniform, *s, steps, 1.0, te);
    const auto gq = make_time_grid(GridKind::DdpmQuadratic, *s, steps, 1.0, te);
    for (int i = 0; i <= steps; ++i) {
      const double u = 1.0 - double(i) / steps;
      INFO("steps = " << steps << " i = " << i);
      CHECK(std::lround(gu[i] * N) == 1 + std::lround(u * 999));
      CHECK(std::lround(gq[i] * N) == 1 + std::lround(u * u * 999));
    }
  }
  // Every knot of a 999-step grid is used exactly once.
  const auto all = make_time_grid(GridKind::DdpmQuadratic, *s, 999, 1.0, te);
  for (int i = 0; i <= 999; ++i) CHECK(std::lround(all[i] * N) == N - i);
  // A sub-range of knots.
  const auto sub = make_time_grid(GridKind::DdpmUniform, *s, 4, 0.5, 0.1);
  const std::vector<long> want = {500, 400, 300, 200, 100};
  for (int i = 0; i <= 4; ++i) CHECK(std::lround(sub[i] * N) == want[i]);
}

TEST_CASE("grid names parse and round-trip", "[schedules][grid]") {
  const auto& reg = grid_registry();
  REQUIRE(reg.size() == 13);
  std::set<std::string> names;
  for (const auto& info : reg) {
    CHECK_FALSE(info.summary.empty());
    names.insert(info.name);
    if (info.kind == GridKind::File) {  // "file:PATH" names a file (tests/test_grid_file.cpp)
      CHECK(grid_name(info.kind) == "file");
      continue;
    }
    CHECK(parse_grid(info.name) == info.kind);
    CHECK(grid_name(info.kind) == info.name);
  }
  CHECK(names.size() == reg.size());
  for (const char* n : {"uniform-t", "uniform-lambda", "quadratic", "karras", "ddpm-uniform",
                        "ddpm-quad", "kl-optimal", "beta", "linear-quadratic", "ays-sd1",
                        "ays-sdxl", "ays-svd", "file:GRID.json"})
    CHECK(names.count(n) == 1);
  REQUIRE_THROWS_AS(parse_grid("logsnr"), std::invalid_argument);
  for (const auto& info : reg) REQUIRE_THROWS_WITH(parse_grid("logsnr"), Contains(info.name));
  REQUIRE_THROWS_WITH(parse_grid("logsnr"), Contains("logsnr"));
}

// ---------------------------------------------------------------------------------------------
// 6. Bad input
// ---------------------------------------------------------------------------------------------

TEST_CASE("negative beta is rejected", "[schedules][errors]") {
  REQUIRE_INVALID(VPLinear(-0.1, 20.0), "beta_min");
  REQUIRE_INVALID(SubVP(-0.1, 20.0), "beta_min");
  REQUIRE_INVALID(VPLinear(0.1, -1.0), "beta_max");
}

TEST_CASE("beta_max < beta_min is rejected", "[schedules][errors]") {
  REQUIRE_INVALID(VPLinear(1.0, 0.5), "beta_max");
  REQUIRE_INVALID(SubVP(1.0, 0.5), "beta_max");
  REQUIRE_INVALID(VPLinear(0.1, 20.0, 0.0), "'T'");
  REQUIRE_NOTHROW(VPLinear(0.5, 0.5));  // constant beta is fine
}

TEST_CASE("VE / EDM sigma_max <= sigma_min is rejected", "[schedules][errors]") {
  REQUIRE_INVALID(VE(1.0, 1.0), "sigma_max");
  REQUIRE_INVALID(VE(2.0, 1.0), "sigma_max");
  REQUIRE_INVALID(VE(0.0, 1.0), "sigma_min");
  REQUIRE_INVALID(EDM(80.0, 0.002), "sigma_max");
  REQUIRE_INVALID(EDM(-1.0, 80.0), "sigma_min");
}

TEST_CASE("cosine T >= 1 is rejected", "[schedules][errors]") {
  REQUIRE_INVALID(VPCosine(0.008, 1.0), "'T'");
  REQUIRE_INVALID(VPCosine(0.008, 1.5), "'T'");
  REQUIRE_INVALID(VPCosine(0.0, 0.9), "'s'");
}

TEST_CASE("discrete beta outside (0, 1) is rejected", "[schedules][errors]") {
  REQUIRE_INVALID(VPDiscrete({0.1, 1.0}), "betas[1]");
  REQUIRE_INVALID(VPDiscrete({0.0, 0.1}), "betas[0]");
  REQUIRE_INVALID(VPDiscrete({0.1, 0.2, -0.3}), "betas[2]");
  REQUIRE_INVALID(VPDiscrete({std::nan("")}), "betas[0]");
  REQUIRE_INVALID(VPDiscrete::linear(0), "N");
}

TEST_CASE("empty discrete table is rejected", "[schedules][errors]") {
  REQUIRE_INVALID(VPDiscrete(std::vector<double>{}), "empty");
}

TEST_CASE("t outside the domain is rejected", "[schedules][errors]") {
  for (const auto& s : all_with_callbacks()) {
    const Interval d = s->domain();
    for (double t : {d.lo - 0.1, d.hi + 0.1, std::nan("")}) {
      INFO(s->name() << " t = " << t);
      REQUIRE_INVALID(s->log_alpha(t), "outside the domain");
      REQUIRE_INVALID(s->alpha(t), "outside the domain");
      REQUIRE_INVALID(s->sigma(t), "outside the domain");
      REQUIRE_INVALID(s->log_sigma(t), "outside the domain");
      REQUIRE_INVALID(s->lambda(t), "outside the domain");
      REQUIRE_INVALID(s->f(t), "outside the domain");
      REQUIRE_INVALID(s->g2(t), s->name());
    }
  }
  const auto sde = callback_vp_sde();
  const at::Tensor x = at::zeros({2}, at::kDouble);
  REQUIRE_INVALID(sde->drift(x, 1.5), "outside the domain");
  REQUIRE_INVALID(sde->g2(-0.5), "outside the domain");
  REQUIRE_INVALID(make_sde("vp-linear")->drift(x, 2.0), "outside the domain");
}

TEST_CASE("steps <= 0 is rejected", "[schedules][errors]") {
  const auto s = make_schedule("vp-linear");
  for (const auto& info : grid_registry()) {
    REQUIRE_INVALID(make_time_grid(info.kind, *s, 0, 1.0, 1e-3), "steps");
    REQUIRE_INVALID(make_time_grid(info.kind, *s, -3, 1.0, 1e-3), "steps");
  }
}

TEST_CASE("t_end outside (lo, t_start) and bad t_start are rejected", "[schedules][errors]") {
  const auto s = make_schedule("vp-linear");
  for (const auto& info : grid_registry()) {
    if (info.kind == GridKind::DdpmUniform || info.kind == GridKind::DdpmQuadratic) continue;
    REQUIRE_INVALID(make_time_grid(info.kind, *s, 10, 1.0, 0.0), "t_end");
    REQUIRE_INVALID(make_time_grid(info.kind, *s, 10, 1.0, -0.1), "t_end");
    REQUIRE_INVALID(make_time_grid(info.kind, *s, 10, 0.5, 0.5), "t_end");
    REQUIRE_INVALID(make_time_grid(info.kind, *s, 10, 0.5, 0.7), "t_end");
    REQUIRE_INVALID(make_time_grid(info.kind, *s, 10, 1.5, 1e-3), "t_start");
    REQUIRE_INVALID(make_time_grid(info.kind, *s, 10, 0.0, 1e-3), "t_start");
  }
  GridOptions opt;
  opt.rho = 0.0;
  REQUIRE_INVALID(make_time_grid(GridKind::Karras, *s, 10, 1.0, 1e-3, opt), "rho");
}

TEST_CASE("ddpm grid on a non-discrete schedule is rejected", "[schedules][errors]") {
  for (const char* name : {"vp-linear", "vp-cosine", "sub-vp", "ve"}) {
    const auto s = make_schedule(name);
    REQUIRE_INVALID(make_time_grid(GridKind::DdpmUniform, *s, 10, 0.5, 0.01), "vp-discrete");
    REQUIRE_INVALID(make_time_grid(GridKind::DdpmQuadratic, *s, 10, 0.5, 0.01), "vp-discrete");
  }
  // On vp-discrete, the ends must be knots n/N.
  const auto d = make_schedule("vp-discrete");
  REQUIRE_INVALID(make_time_grid(GridKind::DdpmUniform, *d, 10, 1.0, 0.0105), "knots");
}

TEST_CASE("too many ddpm steps are rejected", "[schedules][errors]") {
  const auto s = make_schedule("vp-discrete");
  REQUIRE_INVALID(make_time_grid(GridKind::DdpmUniform, *s, 1000, 1.0, 1e-3), "<= 999");
  REQUIRE_INVALID(make_time_grid(GridKind::DdpmQuadratic, *s, 1000, 1.0, 1e-3), "<= 999");
  REQUIRE_INVALID(make_time_grid(GridKind::DdpmUniform, *s, 5, 0.004, 1e-3), "<= 3");
  REQUIRE_NOTHROW(make_time_grid(GridKind::DdpmUniform, *s, 3, 0.004, 1e-3));
}

TEST_CASE("unknown schedule name is rejected with the valid names", "[schedules][errors]") {
  REQUIRE_INVALID(make_schedule("vp-quadratic"), "vp-quadratic");
  REQUIRE_INVALID(make_sde("nope"), "nope");
  for (const auto& info : schedule_registry()) {
    REQUIRE_THROWS_WITH(make_schedule("vp-quadratic"), Contains(info.name));
    REQUIRE_THROWS_WITH(make_sde("nope"), Contains(info.name));
  }
}

TEST_CASE("CallbackSDE / CallbackSchedule with missing callbacks are rejected",
          "[schedules][errors]") {
  const auto good = [] {
    CallbackSDE::Spec spec;
    spec.name = "user";
    spec.drift = [](const at::Tensor& x, double t) { return -0.5 * beta_lin(t) * x; };
    spec.diffusion = [](double t) { return std::sqrt(beta_lin(t)); };
    spec.alpha = [](double t) { return std::exp(-B_lin(t) / 2.0); };
    spec.sigma = [](double t) { return std::sqrt(-std::expm1(-B_lin(t))); };
    return spec;
  };
  REQUIRE_NOTHROW(CallbackSDE(good()));
  {
    auto spec = good();
    spec.drift = nullptr;
    REQUIRE_INVALID(CallbackSDE(spec), "drift");
  }
  {
    auto spec = good();
    spec.diffusion = nullptr;
    REQUIRE_INVALID(CallbackSDE(spec), "diffusion");
  }
  {
    auto spec = good();
    spec.sigma = nullptr;
    REQUIRE_INVALID(CallbackSDE(spec), "alpha and sigma");
  }
  {
    auto spec = good();
    spec.alpha = nullptr;
    spec.sigma = nullptr;
    REQUIRE_INVALID(CallbackSDE(spec), "prior_std");
  }
  {
    auto spec = good();
    spec.t_end = 0.0;
    REQUIRE_INVALID(CallbackSDE(spec), "t_end");
  }
  {
    CallbackSchedule::Spec spec;
    spec.alpha = [](double) { return 1.0; };
    REQUIRE_INVALID(CallbackSchedule(spec), "sigma");
    spec.sigma = [](double t) { return t; };
    spec.domain = {1.0, 1.0};
    REQUIRE_INVALID(CallbackSchedule(spec), "domain.hi");
  }
  REQUIRE_INVALID(AffineSDE(nullptr), "null");
}

TEST_CASE("flow: the shift's names, SD3's resolution rule and bad options", "[schedules][flow]") {
  CHECK(make_schedule("flow:shift=3")->name() == "flow:shift=3");
  CHECK(make_schedule("flow:shift=1")->name() == "flow");
  // 1024 x 1024 against 256^2: s = 4; u(t) = 4 t / (1 + 3 t).
  const auto r = make_schedule("flow:res=1024x1024");
  CHECK(r->sigma(0.5) == Approx(4 * 0.5 / (1 + 3 * 0.5)).epsilon(1e-14));
  CHECK(r->alpha(0.5) + r->sigma(0.5) == Approx(1.0).epsilon(1e-15));
  for (const char* bad : {"flow:shift=0", "flow:shift=-2", "flow:shift=x", "flow:res=1024",
                          "flow:res=0x5", "flow:speed=2"}) {
    INFO(bad);
    CHECK_THROWS_WITH(make_schedule(bad), Catch::Contains("flow"));
  }
}
