#pragma once
// What predicts: a model of the noised data distribution, queried at (x, t) in the SDE's own
// time variable, returning one declared parameterization (models/param.hpp).
#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>

#include "models/param.hpp"

namespace sdekit {

class ScoreModel {
 public:
  virtual ~ScoreModel() = default;
  /// The parameterization predict() returns.
  virtual Param param() const = 0;
  virtual std::string name() const { return "model"; }
  /// x: [n, ...]; t: [n], one time per row. Returns a tensor shaped like x.
  virtual at::Tensor predict(const at::Tensor& x, const at::Tensor& t) = 0;
  /// Every row at the same time t, as samplers call it. The default builds a [n] tensor of t on
  /// x's device and calls predict(x, t); models override it where a scalar time is cheaper.
  virtual at::Tensor predict_at(const at::Tensor& x, double t);
  /// Network evaluations one predict() costs: 1, or 2 for classifier-free guidance (a
  /// conditional and an unconditional call). CountingModel counts NFE in these units.
  virtual int calls_per_predict() const { return 1; }
  /// predict(x, t) recorded by autograd, so that its derivatives in x can be taken (the
  /// divergence of the likelihood ODE). The default throws std::invalid_argument naming the
  /// model: it cannot give gradients.
  virtual at::Tensor predict_grad(const at::Tensor& x, const at::Tensor& t);
  /// Consistency functions (models/consistency.hpp) return, instead of a parameterization, the
  /// end at time *consistency_end() of the probability-flow ODE trajectory through (x, t); only
  /// the "consistency" sampler uses them. Ordinary models: nullopt.
  virtual std::optional<double> consistency_end() const { return std::nullopt; }
};

/// Forwards to a model and counts its calls: one batched call is one network function
/// evaluation (NFE). Samplers wrap the model they are given in one of these per run.
class CountingModel final : public ScoreModel {
 public:
  explicit CountingModel(ScoreModel& inner) : inner_(inner) {}
  Param param() const override { return inner_.param(); }
  std::string name() const override { return inner_.name(); }
  at::Tensor predict(const at::Tensor& x, const at::Tensor& t) override {
    count_ += inner_.calls_per_predict();
    return inner_.predict(x, t);
  }
  at::Tensor predict_at(const at::Tensor& x, double t) override {
    count_ += inner_.calls_per_predict();
    return inner_.predict_at(x, t);
  }
  int calls_per_predict() const override { return inner_.calls_per_predict(); }
  at::Tensor predict_grad(const at::Tensor& x, const at::Tensor& t) override {
    count_ += inner_.calls_per_predict();
    return inner_.predict_grad(x, t);
  }
  std::optional<double> consistency_end() const override { return inner_.consistency_end(); }
  int64_t count() const { return count_; }
  void reset() { count_ = 0; }

 private:
  ScoreModel& inner_;
  int64_t count_ = 0;
};

}  // namespace sdekit
