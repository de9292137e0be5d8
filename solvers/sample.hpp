#pragma once
// The common way to sample: a step count (and grid) instead of explicit times, and a seed
// instead of x_T. Builds the grid from the SDE's kernel, draws x_T ~ N(0, prior_std^2 I) unless
// given, and runs the sampler. Its randomness is row-keyed (docs/theory.md section 10.1: row i's
// x_T is draw 0 of stream (seed, i), its k-th noise draw is draw k), or with RngKind::Generator
// one generator seeded by `seed` (first the prior draw, then the sampler's noise).
#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "schedules/time_grid.hpp"
#include "solvers/row_noise.hpp"
#include "solvers/sampler.hpp"

namespace sdekit {

struct SampleSpec {
  /// Steps, the step to sigma = 0 included when `to_zero` (the grid then has steps - 1).
  int steps = 20;
  std::optional<GridKind> grid;  // default: default_grid(kernel)
  std::string grid_file;         // GridKind::File: the grid file
  double t_end = -1.0;           // < 0: the SDE's default
  at::Tensor x_init;             // optional [n, ...]; else drawn with `n` rows of `event_shape`
  int64_t n = 1000;
  std::vector<int64_t> event_shape;  // shape of one sample, e.g. {D}; ignored with x_init
  uint64_t seed = 0;
  /// Where x_T and the sampler noise come from (row_noise.hpp): row-keyed by default, so that
  /// row i of a run is the same whatever the batch; `first_row` is the index of this batch's
  /// first row. RngKind::Generator: one generator seeded by `seed` for the whole batch.
  RngKind rng = RngKind::Rows;
  int64_t first_row = 0;
  at::TensorOptions options = at::kFloat;  // dtype/device of the drawn x_T (x_init is cast to it)
  FiniteCheck finite_check = FiniteCheck::EveryStep;
  BrownianPtr brownian;  // optional: the noise of stochastic samplers comes from this path
  NoiseReplayPtr noise;  // optional: their standard-normal draws come from these blocks
  /// End with a step to sigma = 0 after t_end (SampleRequest::to_zero): the last of `steps`, so
  /// that `steps` n on a Karras grid is k-diffusion's get_sigmas_karras(n, ...) with its 0.
  bool to_zero = false;
};

/// The time grid `spec` asks for on `sde` (needs the SDE's kernel for the grid kinds other than
/// uniform-t and quadratic), without the step to sigma = 0. Throws std::invalid_argument naming
/// the bad field.
/// `groups`: the sampler's grid_groups() (GridOptions::groups).
std::vector<double> spec_grid(const SDE& sde, const SampleSpec& spec,
                              const std::vector<int>& groups = {});

SampleResult sample(const Sampler& sampler, ScoreModel& model, const SDE& sde,
                    const SampleSpec& spec, const StepObserver& observer = {});

/// Rows [lo, hi) of the run `spec` describes (its n rows, or x_init's), sampled in batches of at
/// most `batch` rows (0: all at once) and put back together in order: x holds hi - lo rows, nfe
/// and steps are the first batch's, attempts their sum. With row-keyed randomness every row is
/// the one the whole run gives (a fixed-grid sampler's, bit for bit where the model's arithmetic
/// does not depend on the batch; an adaptive sampler's steps depend on its batch). The
/// generator's stream, a Brownian path and replayed noise without rows to slice depend on the
/// batch: std::invalid_argument unless [lo, hi) is the whole run in one batch.
SampleResult sample_rows(const Sampler& sampler, ScoreModel& model, const SDE& sde,
                         const SampleSpec& spec, int64_t lo, int64_t hi, int64_t batch = 0);

}  // namespace sdekit
