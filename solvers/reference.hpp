#pragma once
// Accurate probability-flow ODE solutions for experiments, and the cost accounting of the
// adaptive Runge-Kutta samplers ("dopri5", "cash-karp", "fehlberg78"; solvers/adaptive_rk.cpp).
//
// Both integrate the PF-ODE dx/dt = f(x,t) - g2(t) score(x,t) / 2 (docs/theory.md section 2) with
// embedded Runge-Kutta pairs under local error control: a step of size dt from x is accepted when
//   max_i |err_i| / (atol + rtol (|x_i| + |dt| |dxdt_i|)) <= 1
// (odeint's default error checker; err is the difference of the pair's two solutions). Time runs
// from t_from to t_to either way: decreasing samples (noise -> data), increasing encodes.
#include <ATen/ATen.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "models/score_model.hpp"
#include "schedules/sde.hpp"
#include "solvers/sampler.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {

/// What one adaptive Runge-Kutta run cost.
///
/// Host-device syncs: the error norm of every attempted step reduces the scaled error to one
/// host double (odeint's infinity norm: one sync per attempted step, so 1 + rejected / accepted
/// per accepted step), and the request's finiteness check reads one host double per accepted
/// step (FiniteCheck::EveryStep) or once at the end (FiniteCheck::Final). Nothing else in the
/// solver leaves the device; the model may sync on its own (not counted here).
struct AdaptiveStats {
  int64_t nfe = 0;           // model calls, counted at the model
  int accepted = 0;          // accepted steps (those the observer sees)
  int rejected = 0;          // attempted steps whose error exceeded the tolerance
  int64_t norm_syncs = 0;    // error-norm evaluations = attempted steps = accepted + rejected
  int64_t finite_syncs = 0;  // finiteness checks
  /// (norm_syncs + finite_syncs) / accepted; 0 without accepted steps.
  double syncs_per_step() const {
    return accepted > 0 ? static_cast<double>(norm_syncs + finite_syncs) / accepted : 0.0;
  }
};

struct AdaptiveSolution {
  at::Tensor x;  // at request.times.back()
  AdaptiveStats stats;
  /// options.dense_output only: the state at every request time (front: x_init, back: x),
  /// interpolated by the dense-output stepper between its accepted steps. Empty otherwise.
  std::vector<at::Tensor> observed;
};

/// Runs the adaptive Runge-Kutta sampler `method` ("dopri5", "cash-karp", "fehlberg78") with
/// `options` (rtol, atol, max_steps, dense_output) exactly as Sampler::run does (same steps,
/// same observer calls, same errors) and returns its cost accounting. Throws
/// std::invalid_argument for an unknown method or a bad request/option.
AdaptiveSolution adaptive_solve(std::string_view method, const SamplerOptions& options,
                                const SampleRequest& request, const StepObserver& observer = {});

/// A reference solution of the PF-ODE from x_T at t_from to t_to.
struct ReferenceSolution {
  at::Tensor x;  // float64, at t_to: dopri5 at (rtol, atol)
  /// max_i |x_i - y_i|, y the dopri5 solution at (10 rtol, 10 atol). The global error of an
  /// error-per-step controlled solve is close to proportional to the tolerance, so this is about
  /// the error of y, i.e. about ten times the error of x: a conservative estimate. (Measured on
  /// the 64-d Gaussian of tests/test_adaptive.cpp under vp-linear at 1e-10: true error 1.5e-11,
  /// estimate 1.1e-10; on gmm64 against a 1e-12 solve: 1.5e-10 and 1.5e-9.)
  double error_estimate = 0.0;
  AdaptiveStats stats;        // of the solve at (rtol, atol)
  AdaptiveStats check_stats;  // of the solve at (10 rtol, 10 atol)
};

/// Solves the PF-ODE of `sde` with `model` in float64 (x_T is converted) from t_from to t_to (both
/// inside the SDE's domain, t > domain.lo; either direction) with dopri5 at (rtol, atol) and at
/// (10 rtol, 10 atol) and returns the first with the difference as error estimate. Fehlberg 7(8)
/// is cheaper at equal tolerance (about 0.6x the model calls) but its error estimator is weak on
/// this problem (64-d Gaussian at 1e-10: error 1.8e-9 against dopri5's 1.5e-11), so the
/// reference is Dormand-Prince.
/// Cost: gmm64 under vp-linear, x_T [64, 64], t = 1 -> 1e-3, rtol = atol = 1e-10: 901 + 577 model
/// calls (148 accepted steps at 1e-10), 0.5 s on a 2-core x86 CPU (LibTorch 1.13, float64; up to
/// about 3 s while other builds ran on the same cores).
/// Throws std::invalid_argument for bad tolerances or times, std::runtime_error when 100000
/// attempted steps do not reach t_to.
ReferenceSolution reference_solve(ScoreModel& model, const SDE& sde, const at::Tensor& x_T,
                                  double t_from, double t_to, double rtol = 1e-10,
                                  double atol = 1e-10);

}  // namespace sdekit
