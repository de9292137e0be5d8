#pragma once
// A noise-conditional classifier p_phi(y | x_t, t) for 1x28x28 images (Fashion-MNIST), the
// classifier of classifier guidance (docs/theory.md section 5.2). It is trained on
// x_t = alpha(t) x0 + sigma(t) eps of one SDE, for t across that SDE's domain, and is used
// under that SDE only.
//
// Architecture: the feature classifier's layers (networks/classifier.hpp) with a time embedding:
// sinusoidal features of 1000 t (16 frequencies), Linear 32 -> 128, SiLU, Linear 128 -> 192, split
// into per-channel biases added after each of the four convolutions (32, 32, 64, 64 channels). The
// last embedding layer starts at zero, so a classifier initialised from the feature classifier
// starts as exactly that classifier at every t.
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace sdekit {

class ImageClassifier;

class NoisyImageClassifier {
 public:
  /// `sde`: the name of the SDE whose noised data it classifies (make_sde()).
  NoisyImageClassifier(std::string sde, uint64_t seed);
  ~NoisyImageClassifier();
  NoisyImageClassifier(const NoisyImageClassifier&) = delete;
  NoisyImageClassifier& operator=(const NoisyImageClassifier&) = delete;

  static constexpr int64_t kClasses = 10;
  const std::string& sde() const { return sde_; }
  /// Class logits [n, 10] (float32) of x_t [n, 1, 28, 28] or [n, 784] at times t [n] (or one
  /// element for all rows). Differentiable in x (autograd), on the classifier's device.
  at::Tensor logits(const at::Tensor& x, const at::Tensor& t);
  /// Fraction of correct argmax predictions on x_t = alpha(t) x0 + sigma(t) eps for clean
  /// images x0 and labels, with eps drawn from a generator seeded by `seed`.
  double accuracy_at(double t, const at::Tensor& images, const at::Tensor& labels, uint64_t seed);
  /// Copies the convolution and linear weights of a feature classifier (same layer names).
  void init_from(const ImageClassifier& clean);
  void to(const std::string& device);

  void save(const std::string& path) const;
  /// Throws std::invalid_argument naming the file when it cannot be read or is not one.
  static std::shared_ptr<NoisyImageClassifier> load(const std::string& path,
                                                    const std::string& device = "cpu");

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::string sde_;
  std::unique_ptr<Impl> impl_;
};

struct NoisyClassifierTraining {
  std::string sde = "vp-linear";
  int64_t epochs = 3;
  int64_t batch = 128;
  double lr = 5e-4;
  uint64_t seed = 0;
  std::string init;  // a feature classifier (classifier.pt) to start from; empty: random
  /// Throws std::invalid_argument naming the field (as ClassifierTraining, plus an unknown SDE
  /// or one without a Gaussian kernel, and an init file that does not exist).
  void validate(int64_t n) const;
};

/// Trains with Adam and cross-entropy on x_t = alpha(t) x0 + sigma(t) eps, one time per image
/// drawn as t = t_lo + (T - t_lo) u^2 with u uniform (density proportional to 1 / sqrt(t - t_lo):
/// more of the small times, where the class is visible), t_lo the SDE's default end time.
/// Reports (epoch, mean loss) after each epoch.
std::shared_ptr<NoisyImageClassifier> train_noisy_classifier(
    const NoisyClassifierTraining& cfg, const at::Tensor& images, const at::Tensor& labels,
    const std::function<void(int64_t epoch, double loss)>& progress = {});

}  // namespace sdekit
