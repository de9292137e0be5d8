#pragma once
// One interface for every integrator. A sampler integrates the reverse-time SDE or the
// probability-flow ODE of `sde` from times.front() (noise side) down to times.back() (data
// side) along the given grid, starting from x_init, and returns x at times.back() with the number
// of model calls (NFE) it really made, counted at the model.
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "models/predictor.hpp"
#include "models/score_model.hpp"
#include "schedules/sde.hpp"
#include "solvers/brownian.hpp"
#include "solvers/noise_replay.hpp"

namespace sdekit {

/// How often a run checks x for NaN / inf: after every step (reports the step and t; on the CPU a
/// scan of the state, on CUDA one reduction and one device sync per step) or only at the end.
enum class FiniteCheck { EveryStep, Final };

struct SampleRequest {
  ScoreModel* model = nullptr;  // required
  const SDE* sde = nullptr;     // required
  /// Strictly monotone times inside sde->domain() (t > domain.lo), >= 2 entries. Decreasing
  /// samples (noise -> data); increasing encodes (data -> noise), deterministic samplers only.
  /// Adaptive samplers use only the two ends.
  std::vector<double> times;
  at::Tensor x_init;                       // [n, ...] at times.front(), floating point
  std::optional<at::Generator> generator;  // noise of stochastic samplers, unless `brownian`
  BrownianPtr brownian;  // optional: stochastic samplers draw their noise from this path
  /// Optional: every standard-normal draw comes from these blocks instead (solvers/
  /// noise_replay.hpp); not with `brownian`.
  NoiseReplayPtr noise;
  FiniteCheck finite_check = FiniteCheck::EveryStep;
  /// After times.back(), one more step to sigma = 0, the data end (docs/theory.md section 4.17):
  /// x = the model's x0 prediction at times.back(), one model call, which is the Euler step to
  /// sigma = 0 of the PF-ODE in sigma (k-diffusion's and EDM's last step). A sampler with its own
  /// step to 0 takes that instead (Sampler::own_step_to_zero). Decreasing times only; needs the
  /// SDE's kernel; not for consistency samplers, whose function already ends at the data.
  bool to_zero = false;
};

struct StepInfo {
  int index;            // 0-based step
  int steps;            // total steps (adaptive samplers: -1, not known in advance)
  double t_from;        // time at the start of the step
  double t_to;          // time at its end
  const at::Tensor& x;  // state at t_to
  int64_t nfe;          // model calls so far
};
using StepObserver = std::function<void(const StepInfo&)>;

struct SampleResult {
  at::Tensor x;
  int64_t nfe = 0;
  int steps = 0;     // accepted steps (with the step to sigma = 0)
  int attempts = 0;  // adaptive samplers: attempted steps, rejected ones included (else 0)
};

/// What a sampler's integrate() sees: the counted model, the SDE, the grid and the noise, and
/// step_done() to report every accepted step (finiteness check, observer).
class RunContext {
 public:
  RunContext(const SampleRequest& r, const Predictor& predictor, const CountingModel& counter,
             at::Generator* generator, const StepObserver& observer, std::string_view sampler);
  const SDE& sde;
  const NoiseSchedule* kernel;  // the SDE's Gaussian kernel, or null
  /// The schedule of an AffineSDE, whose drift is exactly f(t) x (samplers fold it into their
  /// linear combinations); null for other SDEs, even with a kernel (a user drift stays exact).
  const NoiseSchedule* affine;
  const Predictor& predictor;  // counted model
  at::Generator* generator;    // null unless the request has one
  const std::vector<double>& times;
  int steps() const { return static_cast<int>(times.size()) - 1; }
  int64_t nfe() const;
  /// Whether the noise comes from the request's Brownian path (else from its generator).
  bool has_brownian() const { return static_cast<bool>(request_.brownian); }
  /// Whether the noise comes from the request's replayed blocks.
  bool has_noise_replay() const { return static_cast<bool>(request_.noise); }
  /// Whether the run ends with a step to sigma = 0 after times.back() (SampleRequest::to_zero).
  bool to_zero() const { return request_.to_zero; }
  /// Adaptive samplers count each attempted step here (SampleResult::attempts).
  void count_attempt() const { ++attempts_; }
  int attempts() const { return attempts_; }
  /// One standard-normal draw into `out` that is never a Brownian increment (the Langevin
  /// correctors'): the replay's next block, else the generator's.
  void generator_normal_into(at::Tensor& out) const;
  /// The reverse-time Wiener increment over a step from s down to t (or up), W(s) - W(t), shaped
  /// like x: from the request's Brownian path if it has one, else sqrt(|s - t|) N(0, I) drawn
  /// from the generator. Variance |s - t| per entry.
  at::Tensor wiener(const at::Tensor& x, double s, double t) const;
  /// wiener(x, s, t) / sqrt(|s - t|): standard normal noise for the step.
  at::Tensor standard_normal(const at::Tensor& x, double s, double t) const;
  /// The step's Wiener increment and its time integral, for strong order-1.5 schemes, shaped
  /// like x. With h = |s - t|: dW = wiener(x, s, t) = W(s) - W(t) and
  /// dZ = int over the step interval of (W(s) - W(u)) du, the iterated integral I_(1,0) of the
  /// reverse-time Wiener process w-bar(tau) = -W(-tau) (tau = -t runs forward while t runs
  /// down). dW ~ N(0, h), Var dZ = h^3 / 3, Cov(dW, dZ) = h^2 / 2. From the request's Brownian
  /// path (its increment_and_area) if it has one; else drawn from the generator as
  /// dW = sqrt(h) N1, then dZ = (h / 2) dW + sqrt(h^3 / 12) N2 (N1, N2 independent N(0, I)).
  BrownianIncrement wiener_and_area(const at::Tensor& x, double s, double t) const;
  /// Reports step `index` from t_from to t_to, which took `prev` to `x`: checks x for NaN/inf
  /// (per the request's FiniteCheck; `final_step` marks the run's last step) and calls the
  /// observer. Throws NonFiniteError keeping `prev`.
  void step_done(int index, int steps, double t_from, double t_to, const at::Tensor& prev,
                 const at::Tensor& x, bool final_step) const;
  /// A work tensor shaped like `like`, named by the sampler (`name`, and `index` for a family
  /// such as a ring of predictions or the stages of a step), allocated on first use and reused for
  /// the whole run, so that steady-state steps allocate nothing. References stay valid for the
  /// run. `name` must outlive the run (a string literal). The name "state" is FixedStepSampler's
  /// (see state()).
  at::Tensor& buffer(std::string_view name, const at::Tensor& like) const {
    return buffer(name, 0, like);
  }
  at::Tensor& buffer(std::string_view name, int index, const at::Tensor& like) const;
  /// The two buffers the states of a step walk alternate between (`i % 2`).
  at::Tensor& state(int i, const at::Tensor& like) const { return buffer("state", i % 2, like); }
  static constexpr int kMaxBuffers = 32;
  /// Standard normal noise for the step from s to t written into `out` (in place when drawn from
  /// the generator or a replay; a Brownian path's query allocates).
  void standard_normal_into(at::Tensor& out, double s, double t) const;

 private:
  const SampleRequest& request_;
  const CountingModel& counter_;
  const StepObserver& observer_;
  std::string_view sampler_;
  bool all_finite(const at::Tensor& x) const;
  struct NamedBuffer {
    std::string_view name;
    int index;
    at::Tensor tensor;
  };
  mutable std::vector<NamedBuffer> buffers_;
  mutable at::Tensor sum_;  // 0-dim float64, the finiteness check's reduction
  mutable int attempts_ = 0;
};

/// What one step of a fixed-grid sampler sees.
struct StepContext {
  const RunContext& run;
  int index;
  int steps;
  const SDE& sde() const { return run.sde; }
  const NoiseSchedule& kernel() const { return *run.kernel; }
  const Predictor& predictor() const { return run.predictor; }
  at::Generator& generator() const { return *run.generator; }
  bool last() const { return index + 1 == steps; }
};

class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual std::string_view name() const = 0;
  /// Declared order of convergence (deterministic: global order; stochastic: weak order for
  /// the distribution, strong order where the noise is additive). Tests measure it.
  virtual double order() const = 0;
  virtual bool stochastic() const = 0;
  /// Whether every noise draw comes from request.brownian when one is given, so that a row's
  /// noise does not depend on the batch (false where some noise, e.g. Langevin corrector noise,
  /// is no Brownian increment and always comes from request.generator).
  virtual bool uses_brownian_path() const { return stochastic(); }
  /// Model calls per step (adaptive samplers: per attempted step).
  virtual int nfe_per_step() const = 0;
  /// Whether the sampler needs the SDE's Gaussian kernel (alpha, sigma).
  virtual bool needs_kernel() const { return false; }
  /// Adaptive samplers choose their own steps between the request's two end times.
  virtual bool adaptive() const { return false; }
  /// Consistency samplers evaluate a consistency function (ScoreModel::consistency_end() set);
  /// every other sampler refuses one.
  virtual bool consistency() const { return false; }
  /// Whether the sampler takes the step to sigma = 0 (SampleRequest::to_zero) itself, as part of
  /// its own scheme (lms: its multistep formula over [sigma_last, 0]); else Sampler::run takes it
  /// as x = x0(x, times.back()). Either way it costs one model call.
  virtual bool own_step_to_zero() const { return false; }
  /// Singlestep samplers under DPM-Solver's official rule take a grid of N intervals in groups, a
  /// step of order k over k intervals whose inner nodes are its intermediate points
  /// (docs/theory.md section 4.5): the group sizes for `intervals`; empty for one step per
  /// interval. Grid makers pass them on (GridOptions::groups).
  virtual std::vector<int> grid_groups(int intervals) const {
    (void)intervals;
    return {};
  }
  /// Steps that spend at most `nfe` model calls (fixed-step samplers: nfe / nfe_per_step).
  /// Throws std::invalid_argument when nfe cannot buy one step.
  virtual int steps_for_nfe(int nfe) const;

  /// Validates the request (std::invalid_argument naming the field), runs, checks finiteness
  /// (NonFiniteError naming the step and t), counts NFE.
  SampleResult run(const SampleRequest& request, const StepObserver& observer = {}) const;

 protected:
  /// Integrates from times.front() to times.back(), reporting each step through
  /// ctx.step_done(); returns x at times.back().
  virtual at::Tensor integrate(const RunContext& ctx, const at::Tensor& x_init) const = 0;
};

/// A sampler made of independent one-step maps on the given grid. The states alternate between
/// two run buffers (StepInfo::x is valid during the observer call: clone it to keep it).
class FixedStepSampler : public Sampler {
 protected:
  at::Tensor integrate(const RunContext& ctx, const at::Tensor& x_init) const final;
  /// One step from t_from to t_to, written into `out` (a buffer shaped like x, never x itself).
  virtual void step_into(const StepContext& ctx, const at::Tensor& x, double t_from, double t_to,
                         at::Tensor& out) const = 0;
};

/// A run produced NaN or inf. Carries where (step, times) and the last state known to be finite
/// (x before that step, or x_init), so nothing already computed is lost. With FiniteCheck::Final
/// the step is the last one and last_finite is x_init.
class NonFiniteError : public std::runtime_error {
 public:
  NonFiniteError(const std::string& what, int step, double t_from, double t_to,
                 at::Tensor last_finite)
      : std::runtime_error(what),
        step(step),
        t_from(t_from),
        t_to(t_to),
        last_finite(std::move(last_finite)) {}
  int step;
  double t_from, t_to;
  at::Tensor last_finite;
};

/// Throws std::invalid_argument unless the request is well formed for `sampler`.
void validate_request(const Sampler& sampler, const SampleRequest& request);

}  // namespace sdekit
