#pragma once
// Pieces every training loop of sdekit shares (score training, consistency distillation,
// progressive distillation): training data, the optimizer step with warm-up and clipping, the EMA
// update, and checkpoints that resume bit for bit on the CPU. Private to the training code
// (includes <torch/torch.h>).
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "datasets/idx.hpp"
#include "models/gaussian_mixture.hpp"
#include "networks/network.hpp"
#include "networks/train.hpp"

namespace sdekit::detail {

/// Draws training batches (x0 [B, ...] float32, y [B] int64 or undefined) from "two-moons",
/// "swiss-roll", "checkerboard", "mixture:NAME" (exact samples) or "fashion-mnist" (train split),
/// checked against the network's event shape. Errors name `who` and the data.
class DataSource {
 public:
  DataSource(const std::string& data, const NetConfig& net, const std::string& who = "training");
  std::pair<at::Tensor, at::Tensor> batch(int64_t B, at::Generator& gen);
  bool labelled() const { return images_.has_value(); }

 private:
  std::string data_;
  std::optional<ImageDataset> images_;
  std::optional<GaussianMixture> mixture_;
};

/// Fields of two JSON configs that differ, as "field: checkpoint A, now B" (`ignore` skipped).
std::vector<std::string> config_diff(const std::string& checkpoint, const std::string& now,
                                     const std::vector<std::string>& ignore = {"steps"});

/// The running loss record: (step, window mean) entries and the open window.
struct LossLog {
  std::vector<std::pair<int64_t, double>> entries;
  double window = 0.0;
  int64_t window_n = 0;
  double window_start = 0.0;  // wall time the open window started (not checkpointed)
  /// Adds the loss of step `step` (of `steps`); when `close` (a log point), ends the window:
  /// appends (step, window mean) and returns the progress record (mean, steps per second since
  /// the window started, `now`).
  std::optional<TrainProgress> add(double loss, int64_t step, int64_t steps, bool close,
                                   double now);
};

/// Checks the optimisation fields every training shares; errors read "`who`: field ...".
/// `steps_field` names the step count ("steps", "steps_per_round").
void validate_optimization(const std::string& who, const std::string& steps_field, int64_t steps,
                           int64_t batch, double lr, int64_t warmup, double grad_clip,
                           double ema_decay, int64_t checkpoint_every, int64_t log_every);

/// Creates the output folder `dir` (std::invalid_argument naming it when impossible) and returns
/// the path of its checkpoint.pt.
std::string prepare_output(const std::string& dir, const std::string& who);

/// What a checkpoint holds besides the config: named networks, the optimizer, the generator,
/// the loss log and named integers (step, round, ...).
struct CheckpointState {
  std::map<std::string, Network*> nets;
  torch::optim::Optimizer* optimizer = nullptr;
  at::Generator* generator = nullptr;
  LossLog* log = nullptr;
  std::map<std::string, int64_t> counters;  // must contain "step"
};

/// Writes atomically (a .tmp file renamed over `path`).
void write_checkpoint(const std::string& path, const std::string& config_json,
                      const CheckpointState& state);
/// Reads `path` into `state` (nets, optimizer, generator, log, counters) after checking that its
/// config equals `config_json` apart from `ignore`; std::invalid_argument naming the file and
/// the differing fields otherwise.
void read_checkpoint(const std::string& path, const std::string& config_json,
                     CheckpointState& state, const std::vector<std::string>& ignore = {"steps"});

/// One Adam step on `loss`: backward, gradient-norm clipping, linear warm-up of the learning
/// rate over `warmup` steps (`step` counts from 0).
void optimizer_step(torch::optim::Adam& opt, Network& net, const at::Tensor& loss, double lr,
                    int64_t warmup, int64_t step, double grad_clip);
/// ema <- d ema + (1 - d) net with d = min(decay, (1 + step) / (10 + step)) when `warm`, else
/// d = decay.
void ema_update(Network& ema, const Network& net, double decay, int64_t step, bool warm = true);

/// Per-row factors [B, 1, ...] for a batch shaped like x, from host doubles.
at::Tensor rows_like(const std::vector<double>& v, const at::Tensor& x);

}  // namespace sdekit::detail
