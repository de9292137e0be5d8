#pragma once
// Noise schedules: x_t = alpha(t) x0 + sigma(t) eps (docs/theory.md section 1).
//
// Time runs forward from data (t = t_min of the domain) to noise (t = T = t_max). Every
// quantity is a host double. lambda(t) = log(alpha/sigma) is strictly decreasing in t, so its
// inverse t_of_lambda exists. The affine SDE a schedule defines has
//   f(t)  = d log alpha / dt,
//   g2(t) = d sigma^2 / dt - 2 f sigma^2 = -2 sigma^2 d lambda / dt   (docs/theory.md section 2).
#include <memory>
#include <string>

namespace sdekit {

/// A closed time interval [lo, hi].
struct Interval {
  double lo = 0.0;
  double hi = 1.0;
  bool contains(double t) const { return t >= lo && t <= hi; }
};

class NoiseSchedule {
 public:
  virtual ~NoiseSchedule() = default;

  /// Short registry name, e.g. "vp-linear".
  virtual std::string name() const = 0;
  /// The interval on which the formulas hold; t_min may have sigma = 0 (lambda = +inf).
  virtual Interval domain() const = 0;
  /// The end time a sampler stops at by default (> domain().lo where sigma(lo) = 0).
  virtual double default_t_end() const = 0;
  /// The time grid this schedule samples best with by default (a name of grid_registry(),
  /// schedules/time_grid.hpp): uniform in t unless a schedule says otherwise.
  virtual std::string default_grid_name() const { return "uniform-t"; }

  virtual double log_alpha(double t) const = 0;
  virtual double sigma(double t) const = 0;
  /// log sigma; overridden where a closed form is more accurate near sigma = 0.
  virtual double log_sigma(double t) const;

  double alpha(double t) const;
  /// Half log-SNR, log(alpha/sigma): +inf where sigma = 0.
  double lambda(double t) const;
  /// Inverse of lambda on the domain. Closed form where one exists, else a bracketed root
  /// solve (TOMS 748) to 1e-12 relative in t. lambda outside [lambda(hi), lambda(lo)] clamps to
  /// the domain ends.
  virtual double t_of_lambda(double lam) const;

  /// Drift coefficient f(t) = d log alpha / dt (central differences unless overridden).
  virtual double f(double t) const;
  /// Squared diffusion g^2(t) = -2 sigma^2 d lambda / dt (finite differences unless overridden).
  virtual double g2(double t) const;

 protected:
  /// Throws std::invalid_argument naming the schedule if t lies outside domain().
  void check_t(double t, const char* what) const;
};

using SchedulePtr = std::shared_ptr<const NoiseSchedule>;

/// Numerically stable log(1 + exp(x)).
double softplus(double x);

}  // namespace sdekit
