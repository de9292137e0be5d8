#pragma once
// Training score networks by denoising score matching (docs/theory.md section 3): x0 from the data,
// t uniform (continuous) or a uniform DDPM step (discrete), x_t = alpha_t x0 + sigma_t eps, and
// the squared error of the network's prediction against its target (eps, x0 or
// v = alpha eps - sigma x0), optionally weighted. Adam with linear warm-up, gradient-norm
// clipping, an EMA of the weights, classifier-free label dropout, and checkpoints holding
// everything a resumed run needs to continue bit for bit on the CPU (weights, EMA, optimizer
// moments, step, the generator's state).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "networks/network.hpp"

namespace sdekit {

struct TrainConfig {
  NetConfig net;
  /// "two-moons", "swiss-roll", "checkerboard", "mixture:ring2d" | "mixture:gmm64" |
  /// "mixture:gmm:FILE.json" (exact samples), "fashion-mnist" (the train split, [-1, 1]).
  std::string data = "two-moons";
  std::string sde = "vp-linear";
  bool discrete = false;  // times t = n / N for a uniform step n in 1..N (vp-discrete's knots)
  int64_t discrete_steps = 1000;
  /// "none": plain mean squared error of the parameterization's target; "min-snr": the eps-MSE
  /// equivalent weighted by min(SNR, 5) / SNR (Hang et al. 2023), for any target.
  std::string weighting = "none";
  int64_t steps = 2000;
  int64_t batch = 256;
  double lr = 1e-3;
  int64_t warmup = 100;  // linear learning-rate warm-up steps
  double grad_clip = 1.0;
  double ema_decay = 0.999;
  double label_dropout = 0.1;  // class-conditional networks: P(label -> null)
  double t_min = -1.0;         // continuous times ~ U(t_min, T); < 0: the SDE's default t_end
  uint64_t seed = 0;
  std::string device = "cpu";
  int64_t checkpoint_every = 500;
  int64_t log_every = 100;

  std::string to_json() const;
  static TrainConfig from_json(const std::string& text, const std::string& source);
  /// Throws std::invalid_argument naming the field.
  void validate() const;
};

struct TrainProgress {
  int64_t step = 0, steps = 0;
  double loss = 0.0;  // mean loss over the steps since the last report
  double steps_per_second = 0.0;
  double elapsed = 0.0;
};

struct TrainResult {
  int64_t steps = 0;         // steps done in total (including those before a resume)
  int64_t resumed_from = 0;  // 0: a fresh run
  double final_loss = 0.0;   // mean over the last log window
  double seconds = 0.0;      // wall time of this run
  std::vector<std::pair<int64_t, double>> loss_log;  // (step, mean loss of its window)
  std::shared_ptr<Network> net, ema;
};

/// Trains into `dir`: checkpoint.pt (every checkpoint_every steps and at the end), model.pt (the
/// EMA network, Network::load reads it) and train.json (config, steps, wall time, losses) at the
/// end. resume: continue from dir/checkpoint.pt, whose config must equal `config` except for
/// `steps` (std::invalid_argument naming the differing fields otherwise). stop_after >= 0 stops
/// after that many steps of this run (after writing a checkpoint), as an interrupt would.
TrainResult train(const TrainConfig& config, const std::string& dir, bool resume,
                  const std::function<void(const TrainProgress&)>& progress = {},
                  int64_t stop_after = -1);

}  // namespace sdekit
