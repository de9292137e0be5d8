#include "schedules/noise_schedule.hpp"

#include <boost/math/tools/roots.hpp>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace sdekit {

double softplus(double x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

void NoiseSchedule::check_t(double t, const char* what) const {
  const Interval d = domain();
  if (!(t >= d.lo && t <= d.hi)) {
    std::ostringstream os;
    os << name() << "::" << what << ": t = " << t << " is outside the domain [" << d.lo << ", "
       << d.hi << "]";
    throw std::invalid_argument(os.str());
  }
}

double NoiseSchedule::log_sigma(double t) const {
  return std::log(sigma(t));
}

double NoiseSchedule::alpha(double t) const {
  return std::exp(log_alpha(t));
}

double NoiseSchedule::lambda(double t) const {
  const double ls = log_sigma(t);
  if (ls == -std::numeric_limits<double>::infinity())
    return std::numeric_limits<double>::infinity();
  return log_alpha(t) - ls;
}

double NoiseSchedule::t_of_lambda(double lam) const {
  const Interval d = domain();
  const double lam_hi_end = lambda(d.hi);  // smallest lambda on the domain
  if (lam <= lam_hi_end) return d.hi;
  // Find a left bracket a with lambda(a) > lam; lambda(lo) may be +inf (sigma = 0).
  double a = d.lo;
  if (!(std::isfinite(lambda(a)))) {
    double width = d.hi - d.lo;
    a = d.hi;
    for (int k = 0; k < 1100; ++k) {
      width *= 0.5;
      a = d.lo + width;
      if (lambda(a) > lam || width == 0.0) break;
    }
    if (!(lambda(a) > lam)) return d.lo;
    // lambda(a) = +inf (a == lo, or sigma underflows to 0 at a tiny a): toms748 cannot start from
    // an infinite end; the root lies in [a, 2a - lo] (the previous probe), so a is within a - lo.
    if (std::isinf(lambda(a))) return a;
  } else if (lam >= lambda(a)) {
    return d.lo;
  }
  // Right bracket b with lambda(b) < lam; lambda(hi) may be -inf (alpha = 0 at T): move b
  // towards a until lambda is finite there, halving the distance.
  double b = d.hi;
  if (!std::isfinite(lambda(b))) {
    double width = b - a;
    for (int k = 0; k < 1100 && !std::isfinite(lambda(b)); ++k) {
      width *= 0.5;
      b = a + width;
    }
    if (!(lambda(b) < lam)) {  // the root lies in [b, b + width]; lambda is -inf beyond
      double lo_b = b, hi_b = b + width;
      for (int k = 0; k < 200 && hi_b - lo_b > 1e-15 * std::max(1.0, std::abs(hi_b)); ++k) {
        const double mid = 0.5 * (lo_b + hi_b);
        (lambda(mid) > lam ? lo_b : hi_b) = mid;
      }
      return 0.5 * (lo_b + hi_b);
    }
  }
  auto fn = [&](double t) { return lambda(t) - lam; };
  boost::uintmax_t max_iter = 300;
  const auto r = boost::math::tools::toms748_solve(
      fn, a, b, boost::math::tools::eps_tolerance<double>(50), max_iter);
  return 0.5 * (r.first + r.second);
}

namespace {
// Fourth-order finite-difference derivative of fn at t, staying inside [lo, hi].
template <class Fn>
double derivative(Fn fn, double t, Interval d) {
  const double h = 2e-4 * std::max(std::abs(t), 1e-3 * (d.hi - d.lo));
  if (t - 2 * h >= d.lo && t + 2 * h <= d.hi) {
    return (-fn(t + 2 * h) + 8 * fn(t + h) - 8 * fn(t - h) + fn(t - 2 * h)) / (12 * h);
  }
  const double s = (t - 2 * h < d.lo) ? h : -h;  // one-sided towards the inside
  return (-25 * fn(t) + 48 * fn(t + s) - 36 * fn(t + 2 * s) + 16 * fn(t + 3 * s) -
          3 * fn(t + 4 * s)) /
         (12 * s);
}
}  // namespace

double NoiseSchedule::f(double t) const {
  check_t(t, "f");
  return derivative([this](double u) { return log_alpha(u); }, t, domain());
}

double NoiseSchedule::g2(double t) const {
  check_t(t, "g2");
  const double s = sigma(t);
  const double ds2 = derivative(
      [this](double u) {
        const double su = sigma(u);
        return su * su;
      },
      t, domain());
  return ds2 - 2.0 * f(t) * s * s;
}

}  // namespace sdekit
