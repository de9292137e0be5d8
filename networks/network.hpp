#pragma once
// Trainable score networks: a time-conditioned MLP for low-dimensional data and a small U-Net for
// 1x28x28 images (residual blocks, GroupNorm, SiLU, sinusoidal time embedding, optional class
// conditioning with a null class for classifier-free guidance). Either predicts the
// parameterization of its config (eps, x0 or v). The torch::nn modules live behind this
// interface (networks/detail/modules.hpp), so users include ATen headers only.
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/conditional.hpp"
#include "models/score_model.hpp"

namespace sdekit {

struct NetConfig {
  std::string arch = "mlp";                // "mlp" | "unet"
  std::vector<int64_t> event_shape = {2};  // one sample: {D} (mlp) or {C, H, W} (unet)
  Param param = Param::Eps;                // eps | x0 | v
  int64_t num_classes = 0;                 // > 0: class-conditional, label K = null class
  int64_t width = 128;                     // mlp: hidden units; unet: base channels
  int64_t depth = 3;                       // mlp: hidden layers; unet: residual blocks per level
  std::vector<int64_t> channel_mult = {1, 2, 2};  // unet: channels per level (x width)
  int64_t groups = 8;                             // unet: GroupNorm groups
  int64_t time_dim = 64;                          // sinusoidal time features
  double time_scale = 1000.0;                     // the embedding sees t * time_scale

  /// JSON text of the config (stored in checkpoints) and back; errors name `source` and field.
  std::string to_json() const;
  static NetConfig from_json(const std::string& text, const std::string& source);
  /// Throws std::invalid_argument naming the bad field.
  void validate() const;
};

class Network final : public ScoreModel, public ConditionalModel {
 public:
  /// A freshly initialised network (weights from LibTorch's default initialisation, drawn from
  /// the global generator seeded with `seed`).
  Network(const NetConfig& config, uint64_t seed);
  ~Network() override;
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  const NetConfig& config() const { return config_; }
  Param param() const override { return config_.param; }
  std::string name() const override;
  int64_t num_classes() const override { return config_.num_classes; }
  /// Unconditional use: a class-conditional network is given the null label.
  at::Tensor predict(const at::Tensor& x, const at::Tensor& t) override;
  at::Tensor predict(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) override;
  /// predict with autograd, in x's dtype and device (the network's own dtype inside).
  at::Tensor predict_grad(const at::Tensor& x, const at::Tensor& t) override;
  at::Tensor predict_grad(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) override;
  /// The raw forward pass with autograd (training): x [n, ...event], t [n], y [n] or undefined.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y);

  int64_t parameter_count() const;
  std::vector<at::Tensor> parameters() const;
  /// Copies every parameter and buffer from `other` (same config).
  void copy_from(const Network& other);
  /// Moves the network to a device ("cpu", "cuda").
  void to(const std::string& device);
  std::string device() const;
  void train_mode(bool on);

  /// Saves / loads the parameters and buffers only, with the config (a torch archive).
  void save(const std::string& path) const;
  /// Loads a file written by save() (or a checkpoint's EMA weights: see train.hpp). Throws
  /// std::invalid_argument naming the file when it cannot be read or does not match.
  static std::shared_ptr<Network> load(const std::string& path, const std::string& device = "cpu");

  struct Impl;
  Impl& impl() const { return *impl_; }

 private:
  NetConfig config_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdekit
