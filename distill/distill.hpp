#pragma once
// Few-step samplers distilled from a teacher score model (docs/theory.md section 4.14).
//
// Consistency distillation (Song et al. 2023, Algorithm 2): a consistency model f_theta
// (networks/consistency_model.hpp) learns the teacher's PF-ODE solution map. A batch draws data
// x0, an index n uniform in 0..N-2 of the discretization t_end = t_0 < ... < t_{N-1} = T
// (Karras et al.'s rho-schedule in the noise level s = sigma / alpha, mapped to t through lambda),
// and x_{n+1} = alpha x0 + sigma z; one teacher ODE step (Euler or Heun on dx~/ds = eps(x, t) in
// x~ = x / alpha; Euler is DDIM) gives x-hat_n, and the loss is
//   d( f_theta(x_{n+1}, t_{n+1}), f_theta-(x-hat_n, t_n) )
// with theta- an EMA of theta (rate mu, no gradient) and d the squared L2 distance (mean over
// entries) or the pseudo-Huber distance sqrt(|a - b|^2 + c^2) - c (Song & Dhariwal 2023,
// c = 0.00054 sqrt(dim) by default). A second, slower EMA of theta is the model that is saved.
//
// Progressive distillation (Salimans & Ho 2022): round after round, a student learns in one DDIM
// step what its teacher does in two: for t = g_N[i], t' = g_2N[2i + 1], t'' = g_N[i + 1] of nested
// grids, the teacher's two DDIM steps z_t -> z_t' -> z_t'' give the target
//   x~ = (z_t'' - (sigma_t'' / sigma_t) z_t) / (alpha_t'' - (sigma_t'' / sigma_t) alpha_t)
// for the student's x0-prediction, weighted by max(SNR_t, 1) (truncated SNR weighting). Each
// round's student becomes the next round's teacher; every student is saved and is sampled by
// "ddim" on the same grid kind with its own step count.
//
// Both trainings write checkpoints that resume bit for bit on the CPU.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "networks/consistency_model.hpp"
#include "networks/network.hpp"
#include "networks/train.hpp"

namespace sdekit {

/// The teacher of a distillation: "net:FILE.pt" (a network of `sdekit train`), "fmnist" (the
/// committed Fashion-MNIST U-Net), or an exact mixture ("ring2d", "gmm64", "gmm:FILE.json").
struct ConsistencyDistillConfig {
  std::string teacher = "net:model.pt";
  /// The student's F. With init_from_teacher (a network teacher) it is the teacher's
  /// architecture, started from the teacher's weights, and this field is not used.
  NetConfig net;
  bool init_from_teacher = true;
  std::string data = "two-moons";  // as TrainConfig::data
  std::string sde = "vp-linear";
  double t_end = -1.0;  // < 0: the SDE's default end time
  double sigma_data = 0.5;
  int64_t N = 18;               // discretization points
  double rho = 7.0;             // of the discretization
  std::string solver = "heun";  // teacher ODE step: euler | heun
  std::string distance = "l2";  // l2 | pseudo-huber
  double huber_c = -1.0;        // < 0: 0.00054 sqrt(dim)
  double target_decay = 0.95;   // mu of the target network theta-
  double ema_decay = 0.999;     // the saved model's EMA
  int64_t steps = 2000;
  int64_t batch = 256;
  double lr = 1e-4;
  int64_t warmup = 0;
  double grad_clip = 1.0;
  uint64_t seed = 0;
  std::string device = "cpu";
  int64_t checkpoint_every = 500;
  int64_t log_every = 100;

  std::string to_json() const;
  /// Throws std::invalid_argument naming the field.
  void validate() const;
};

struct DistillResult {
  int64_t steps = 0;  // steps done in total (progressive: of the last round)
  int64_t resumed_from = 0;
  double final_loss = 0.0;
  double seconds = 0.0;  // wall time of this run
  std::vector<std::pair<int64_t, double>> loss_log;
};

/// Trains into `dir`: checkpoint.pt, model.pt (the EMA consistency model, load with
/// ConsistencyModel::load or --model cm:FILE) and distill.json at the end. `resume` and
/// `stop_after` as train(). Throws std::invalid_argument for a bad config, teacher or data.
DistillResult distill_consistency(const ConsistencyDistillConfig& config, const std::string& dir,
                                  bool resume,
                                  const std::function<void(const TrainProgress&)>& progress = {},
                                  int64_t stop_after = -1);

struct ProgressiveDistillConfig {
  std::string teacher = "net:model.pt";  // as ConsistencyDistillConfig::teacher
  /// The student's architecture when the teacher is not a network or init_from_teacher is off;
  /// its param field is replaced by student_param.
  NetConfig net;
  bool init_from_teacher = true;
  /// What the students predict: "v" by default, whose x0 = alpha z - sigma v stays stable where
  /// alpha -> 0 (one-step students start at t = T).
  Param student_param = Param::V;
  std::string data = "two-moons";
  std::string sde = "vp-linear";
  double t_end = -1.0;
  std::string grid = "uniform-t";  // a grid kind whose N-step grid nests in its 2N-step grid
  int64_t teacher_steps = 64;      // the first round's teacher DDIM steps (a power of 2 times
                                   // final_steps)
  int64_t final_steps = 1;         // the last round's student steps
  int64_t steps_per_round = 1000;
  int64_t batch = 256;
  double lr = 1e-4;
  int64_t warmup = 0;  // per round
  double grad_clip = 1.0;
  double ema_decay = 0.0;  // 0: the student itself is saved
  uint64_t seed = 0;
  std::string device = "cpu";
  int64_t checkpoint_every = 500;
  int64_t log_every = 100;

  std::string to_json() const;
  void validate() const;
};

struct ProgressiveRound {
  int64_t student_steps = 0;
  std::string file;  // dir/student_N.pt
  double final_loss = 0.0;
  double seconds = 0.0;  // wall time of the round in this run (0 if done before a resume)
};

struct ProgressiveResult : DistillResult {
  std::vector<ProgressiveRound> rounds;
};

/// Trains round after round into `dir`: student_N.pt for every student step count N
/// (teacher_steps / 2, ..., final_steps; Network files, load with --model net:FILE), checkpoint.pt
/// (round and step) and progressive.json at the end. `resume` continues the round in progress;
/// `stop_after` counts steps of this run across rounds.
ProgressiveResult distill_progressive(
    const ProgressiveDistillConfig& config, const std::string& dir, bool resume,
    const std::function<void(int64_t student_steps, const TrainProgress&)>& progress = {},
    int64_t stop_after = -1);

}  // namespace sdekit
