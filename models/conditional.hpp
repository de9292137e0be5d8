#pragma once
// Class-conditional models and classifier-free guidance (Ho & Salimans 2022).
//
// A ConditionalModel predicts from (x, t, y) with one integer label per row; the label
// num_classes() is the null class, the unconditional model learnt with label dropout. A
// GuidedModel binds labels and a guidance weight w and is an ordinary ScoreModel:
//   out = (1 + w) m(x, t, y) - w m(x, t, null)
// in the model's own parameterization (the conversions between parameterizations are affine in
// the prediction with coefficients summing to one, so this is the same combination in eps, x0,
// v or score). w = 0 is plain conditional sampling with one call; w != 0 costs two network
// evaluations per predict, which CountingModel counts as 2 NFE.
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>

#include "models/score_model.hpp"

namespace sdekit {

class ConditionalModel {
 public:
  virtual ~ConditionalModel() = default;
  virtual Param param() const = 0;
  virtual std::string name() const = 0;
  /// Number of real classes K; labels are 0..K-1, and K is the null (unconditional) label.
  virtual int64_t num_classes() const = 0;
  /// x: [n, ...]; t: [n]; y: [n] int64 in [0, K]. Returns a tensor shaped like x.
  virtual at::Tensor predict(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) = 0;
  /// As predict, recorded by autograd (ScoreModel::predict_grad). Default: throws.
  virtual at::Tensor predict_grad(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y);
  int64_t null_class() const { return num_classes(); }
  /// As ScoreModel::consistency_end(): set for conditional consistency models.
  virtual std::optional<double> consistency_end() const { return std::nullopt; }
};

class GuidedModel final : public ScoreModel {
 public:
  /// labels: [m] int64 in [0, K]; row i of a batch gets labels[i mod m] (m = 1: one label for
  /// every row; m = n: one per row; arange(K): balanced classes). Throws
  /// std::invalid_argument for labels outside [0, K] or a non-finite w.
  GuidedModel(std::shared_ptr<ConditionalModel> model, at::Tensor labels, double guidance);
  Param param() const override { return model_->param(); }
  std::string name() const override;
  at::Tensor predict(const at::Tensor& x, const at::Tensor& t) override;
  at::Tensor predict_grad(const at::Tensor& x, const at::Tensor& t) override;
  int calls_per_predict() const override { return guidance_ == 0.0 ? 1 : 2; }
  std::optional<double> consistency_end() const override { return model_->consistency_end(); }
  double guidance() const { return guidance_; }

 private:
  at::Tensor labels_for(const at::Tensor& x) const;
  std::shared_ptr<ConditionalModel> model_;
  at::Tensor labels_;
  double guidance_;
};

/// Row i's label labels[i mod m] for a batch of n rows, on `device` (labels [m], m >= 1).
at::Tensor labels_for_rows(const at::Tensor& labels, int64_t n, at::Device device);

}  // namespace sdekit
