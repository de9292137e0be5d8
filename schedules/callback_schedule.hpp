#pragma once
#include <functional>

#include "schedules/noise_schedule.hpp"

namespace sdekit {

/// A user schedule from two callbacks, alpha(t) and sigma(t), on a given domain. f and g2 come
/// from fourth-order finite differences and t_of_lambda from the bracketed root solve of the
/// base class. Use this to try a new schedule without touching the library.
class CallbackSchedule final : public NoiseSchedule {
 public:
  struct Spec {
    std::string name = "custom";
    Interval domain{0.0, 1.0};
    double t_end = 1e-3;
    std::function<double(double)> alpha;  // alpha(t) > 0
    std::function<double(double)> sigma;  // sigma(t) >= 0, alpha/sigma strictly decreasing
  };
  explicit CallbackSchedule(Spec spec);
  std::string name() const override { return spec_.name; }
  Interval domain() const override { return spec_.domain; }
  double default_t_end() const override { return spec_.t_end; }
  double log_alpha(double t) const override;
  double sigma(double t) const override;

 private:
  Spec spec_;
};

}  // namespace sdekit
