#pragma once
// Score networks exported from Python as TorchScript (torch.jit.script or torch.jit.trace, then
// module.save(path)), loaded with LibTorch and used as a ScoreModel, and for class-conditional
// networks also as a ConditionalModel (classifier-free guidance through GuidedModel).
//
// The module's forward must be one of
//   forward(x, t)      unconditional
//   forward(x, t, y)   class-conditional
// with
//   x  [n, ...]  the noised data, in the module's dtype: the dtype of its first floating-point
//                parameter or buffer (float32 when it has none). Inputs of another dtype are
//                cast to it, and the prediction is cast back to x's dtype.
//   t  [n]       one time per row, in the module's dtype, in the SDE's own time variable: the
//                t of vp-linear, vp-cosine, sub-vp and ve (in [0, 1]), sigma itself for edm.
//                For vp-discrete (a DDPM beta table beta_1..beta_N, schedules/vp_discrete.hpp)
//                t_n = n / N is the knot with abar_n = prod_{j <= n} (1 - beta_j). A network
//                trained on DDPM's integer steps i = 0..N-1, where step i has noise level
//                alphas_cumprod[i] = prod_{j <= i + 1} (1 - beta_j), sees step i at knot
//                n = i + 1, that is t = (i + 1) / N: its exported forward must compute
//                i = N t - 1 (= 999 at t = 1 and 0 at the default t_end 1 / N for N = 1000;
//                between knots a real number, which DDPM's sinusoidal step embeddings accept).
//                The module does whatever other input scaling it was trained with (e.g. EDM's
//                c_in and c_noise = log(sigma) / 4) itself.
//   y  [n]       int64 class labels in 0..K, where K = num_classes() is the null
//                (unconditional) label the network learnt with label dropout.
// It returns one tensor shaped like x holding the declared parameterization (models/param.hpp:
// eps, x0, v, score, denoiser or flow), fixed when loading.
//
// The number of classes K of a conditional module is its int attribute `num_classes` (a plain
// `self.num_classes = K` in Python is kept by torch.jit.script; a torch.jit.Final constant is
// not an attribute), or else the num_classes argument of load().
//
// Calls run under c10::InferenceMode on the device the model was loaded to: inputs are moved
// there and the prediction is returned on x's device, as an ordinary tensor (not an inference
// tensor), so callers may modify it in place. Labels are not range-checked per call (that would
// synchronise with the device): out-of-range labels fail inside the network, and GuidedModel
// checks its labels once. Non-finite outputs are left to the samplers' finiteness checks.
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/conditional.hpp"
#include "models/param.hpp"
#include "models/score_model.hpp"

namespace sdekit {

class TorchScriptModel final : public ScoreModel, public ConditionalModel {
 public:
  /// Loads the TorchScript module at `path` onto `device` ("cpu", "cuda" or "cuda:k") and checks
  /// its forward signature. `param` declares what forward returns. `num_classes` (K >= 1) is
  /// needed for a forward(x, t, y) module without an int attribute `num_classes`; where the
  /// attribute exists, a given num_classes must equal it; an unconditional module takes none
  /// (-1). Throws std::invalid_argument naming the file and what was expected: a missing or
  /// unloadable file, no forward method, forward with other than 2 or 3 tensor arguments, a
  /// conditional module with no class count, an unknown or unavailable device.
  static std::shared_ptr<TorchScriptModel> load(const std::string& path, Param param,
                                                const std::string& device = "cpu",
                                                int64_t num_classes = -1);
  ~TorchScriptModel() override;
  TorchScriptModel(const TorchScriptModel&) = delete;
  TorchScriptModel& operator=(const TorchScriptModel&) = delete;

  Param param() const override { return param_; }
  /// "torchscript:PATH".
  std::string name() const override { return "torchscript:" + path_; }
  const std::string& path() const { return path_; }
  /// Whether forward takes class labels, forward(x, t, y).
  bool conditional() const { return arity_ == 3; }
  /// Tensor arguments of forward besides self: 2 or 3.
  int arity() const { return arity_; }
  /// The names of forward's arguments besides self, as the module declares them.
  const std::vector<std::string>& argument_names() const { return arg_names_; }
  at::Device device() const { return device_; }
  /// The dtype inputs are cast to (see the file comment).
  at::ScalarType dtype() const { return dtype_; }

  /// As a ScoreModel: an unconditional module is called as forward(x, t), a conditional one
  /// with the null label K for every row. Throws std::invalid_argument naming the file when
  /// forward fails or returns anything but a tensor shaped like x.
  at::Tensor predict(const at::Tensor& x, const at::Tensor& t) override;
  /// K for a conditional module; for an unconditional one (which is no ConditionalModel) throws
  /// std::invalid_argument.
  int64_t num_classes() const override;
  /// As a ConditionalModel: forward(x, t, y), y [n] int64 in 0..K. Throws std::invalid_argument
  /// for an unconditional module, and as predict(x, t) does.
  at::Tensor predict(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) override;
  /// As the two predicts, outside InferenceMode and recorded by autograd.
  at::Tensor predict_grad(const at::Tensor& x, const at::Tensor& t) override;
  at::Tensor predict_grad(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) override;

 private:
  struct Impl;
  TorchScriptModel(std::string path, Param param, std::unique_ptr<Impl> impl);
  at::Tensor call(const at::Tensor& x, const at::Tensor& t, const at::Tensor* y, bool grad = false);

  std::string path_;
  Param param_;
  std::unique_ptr<Impl> impl_;
  int arity_ = 2;
  std::vector<std::string> arg_names_;
  int64_t num_classes_ = -1;
  at::Device device_ = at::kCPU;
  at::ScalarType dtype_ = at::kFloat;
};

}  // namespace sdekit
