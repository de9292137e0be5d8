#pragma once
// SDEs in forward time, dx = f(x, t) dt + g(t) dw, t in domain() (docs/theory.md section 2), and
// the two reverse-time processes samplers integrate from T down to t_end:
//   reverse SDE  dx = [f(x,t) - g(t)^2 s(x,t)] dt + g(t) dw-bar
//   PF-ODE       dx/dt = f(x,t) - g(t)^2 s(x,t) / 2
// s is the score grad_x log p_t(x). The noise is additive (g depends on t only).
#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <string>

#include "schedules/noise_schedule.hpp"

namespace sdekit {

class SDE {
 public:
  virtual ~SDE() = default;
  virtual std::string name() const = 0;
  virtual Interval domain() const = 0;
  virtual double default_t_end() const = 0;
  /// Forward drift f(x, t).
  virtual at::Tensor drift(const at::Tensor& x, double t) const = 0;
  /// Squared diffusion g(t)^2.
  virtual double g2(double t) const = 0;
  double diffusion(double t) const;
  /// The Gaussian perturbation kernel x_t | x0 ~ N(alpha_t x0, sigma_t^2 I) where the SDE has
  /// one in closed form; nullptr otherwise (then a model must predict the score itself).
  virtual SchedulePtr schedule() const = 0;
  /// Standard deviation of the prior x_T ~ N(0, prior_std^2 I) that sampling starts from.
  virtual double prior_std() const = 0;

  /// f(x,t) - g2(t) score.
  at::Tensor reverse_drift(const at::Tensor& x, double t, const at::Tensor& score) const;
  /// f(x,t) - g2(t) score / 2.
  at::Tensor pf_drift(const at::Tensor& x, double t, const at::Tensor& score) const;
};

using SDEPtr = std::shared_ptr<const SDE>;

/// The affine SDE a schedule defines: f(x,t) = f(t) x, g^2 = g2(t). The prior is
/// N(0, (alpha_T^2 + sigma_T^2) I), the marginal at T of unit-variance data.
class AffineSDE final : public SDE {
 public:
  explicit AffineSDE(SchedulePtr schedule);
  std::string name() const override { return schedule_->name(); }
  Interval domain() const override { return schedule_->domain(); }
  double default_t_end() const override { return schedule_->default_t_end(); }
  at::Tensor drift(const at::Tensor& x, double t) const override;
  double g2(double t) const override { return schedule_->g2(t); }
  SchedulePtr schedule() const override { return schedule_; }
  double prior_std() const override;

 private:
  SchedulePtr schedule_;
};

/// A user SDE from plain callbacks. With alpha and sigma given, the SDE has a closed-form
/// Gaussian kernel (used to convert eps / x0 / v predictions into scores); without them, only
/// score models can drive it.
class CallbackSDE final : public SDE {
 public:
  struct Spec {
    std::string name = "custom";
    Interval domain{0.0, 1.0};
    double t_end = 1e-3;
    std::function<at::Tensor(const at::Tensor& x, double t)> drift;  // f(x, t)
    std::function<double(double t)> diffusion;                       // g(t)
    std::function<double(double t)> alpha;                           // optional
    std::function<double(double t)> sigma;                           // optional
    double prior_std = 0.0;  // 0: sqrt(alpha_T^2 + sigma_T^2), needs alpha and sigma
  };
  explicit CallbackSDE(Spec spec);
  std::string name() const override { return spec_.name; }
  Interval domain() const override { return spec_.domain; }
  double default_t_end() const override { return spec_.t_end; }
  at::Tensor drift(const at::Tensor& x, double t) const override;
  double g2(double t) const override;
  SchedulePtr schedule() const override { return kernel_; }
  double prior_std() const override { return prior_std_; }

 private:
  void check_t(double t) const;
  Spec spec_;
  SchedulePtr kernel_;
  double prior_std_ = 1.0;
};

}  // namespace sdekit
