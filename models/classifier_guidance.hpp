#pragma once
// Classifier guidance (docs/theory.md section 5.2): a noise-conditional classifier
// p_phi(y | x_t, t) steers any score model toward class y by adding the gradient of its log
// probability to the score,
//   grad log p_s(x_t | y) = grad log p(x_t) + s grad_x log p_phi(y | x_t, t),
// which ClassifierGuidedModel applies in the model's own parameterization: every conversion of
// the score is affine, pred = cx x + cp score (models/param.hpp), so the guided prediction is
// pred + cp s grad, and every sampler runs on it unchanged.
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>

#include "models/conditional.hpp"
#include "models/gaussian_mixture.hpp"
#include "models/score_model.hpp"
#include "schedules/noise_schedule.hpp"

namespace sdekit {

/// p_phi(y | x_t, t) over K classes, at the SDE's own times t.
class NoiseClassifier {
 public:
  virtual ~NoiseClassifier() = default;
  virtual std::string name() const = 0;
  virtual int64_t num_classes() const = 0;
  /// Logits [n, K] at x [n, ...] and times t [n]; differentiable in x.
  virtual at::Tensor logits(const at::Tensor& x, const at::Tensor& t) = 0;
  /// grad_x log p_phi(y_i | x_i, t_i) per row, shaped like x in x's dtype and on x's device;
  /// y [n] int64 in [0, K). The default differentiates log_softmax(logits) with autograd (grad
  /// mode on, also inside an inference-mode caller); closed-form classifiers override it.
  virtual at::Tensor log_prob_grad(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y);
};

/// The exact classifier of a Gaussian mixture whose components are the classes: p(y = k | x_t)
/// is component k's responsibility under the noised mixture p_t (docs/theory.md section 7),
/// with logits l_k = log w_k + log N(x; alpha mu_k, alpha^2 C_k + sigma^2 I) and
/// grad log p(k | x_t) = score_k(x) - score(x) in closed form. With s = 1 the guided score is
/// exactly the score of component k's noised marginal.
class MixtureClassifier final : public NoiseClassifier {
 public:
  MixtureClassifier(GaussianMixture mixture, SchedulePtr kernel);
  std::string name() const override { return "exact (" + mixture_.name() + " components)"; }
  int64_t num_classes() const override { return mixture_.components(); }
  at::Tensor logits(const at::Tensor& x, const at::Tensor& t) override;
  at::Tensor log_prob_grad(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) override;

 private:
  void coefficients(const at::Tensor& x, const at::Tensor& t, at::Tensor& a, at::Tensor& s) const;
  GaussianMixture mixture_;
  SchedulePtr kernel_;
};

/// A score model guided by a classifier toward per-row labels with scale s. NFE stays the
/// model's count (calls_per_predict()); the classifier's calls and their wall time are counted
/// here. s = 0 calls no classifier and returns the model's prediction unchanged.
class ClassifierGuidedModel final : public ScoreModel {
 public:
  /// labels: [m] int64 in [0, K); row i of a batch gets labels[i mod m]. Throws
  /// std::invalid_argument for a missing model, classifier or kernel, labels out of range, or a
  /// non-finite scale.
  ClassifierGuidedModel(std::shared_ptr<ScoreModel> model,
                        std::shared_ptr<NoiseClassifier> classifier, SchedulePtr kernel,
                        at::Tensor labels, double scale);
  Param param() const override { return model_->param(); }
  std::string name() const override;
  at::Tensor predict(const at::Tensor& x, const at::Tensor& t) override;
  at::Tensor predict_at(const at::Tensor& x, double t) override;
  int calls_per_predict() const override { return model_->calls_per_predict(); }
  std::optional<double> consistency_end() const override { return model_->consistency_end(); }

  double scale() const { return scale_; }
  const NoiseClassifier& classifier() const { return *classifier_; }
  /// Batched classifier gradient evaluations so far, and their wall time in seconds.
  int64_t classifier_calls() const { return calls_; }
  double classifier_seconds() const { return seconds_; }

 private:
  at::Tensor guided(at::Tensor pred, const at::Tensor& x, const at::Tensor& t,
                    const at::Tensor& cp);
  std::shared_ptr<ScoreModel> model_;
  std::shared_ptr<NoiseClassifier> classifier_;
  SchedulePtr kernel_;
  at::Tensor labels_;
  double scale_;
  int64_t calls_ = 0;
  double seconds_ = 0.0;
};

}  // namespace sdekit
