#pragma once
// A small convolutional classifier for 1x28x28 images (Fashion-MNIST) whose penultimate layer
// serves as a feature space for Frechet distances and KID. This is an FID-like distance in this
// classifier's feature space, not Inception FID: numbers are comparable with each other, not with
// published FIDs.
//
// Architecture: [conv3x3 32, SiLU, conv3x3 32, SiLU, maxpool 2] -> [conv3x3 64, SiLU, conv3x3 64,
// SiLU, maxpool 2] -> flatten 64*7*7 -> linear 128, SiLU (the features) -> linear 10.
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sdekit {

class ImageClassifier {
 public:
  explicit ImageClassifier(uint64_t seed);
  ~ImageClassifier();
  ImageClassifier(const ImageClassifier&) = delete;
  ImageClassifier& operator=(const ImageClassifier&) = delete;

  static constexpr int64_t kFeatureDim = 128;
  /// Penultimate-layer features [n, 128] (float64, CPU) of images [n, 1, 28, 28] in [-1, 1]
  /// (flat rows [n, 784] are reshaped), evaluated in batches under inference mode.
  at::Tensor features(const at::Tensor& images);
  /// Class logits [n, 10].
  at::Tensor logits(const at::Tensor& images);
  /// Fraction of correct argmax predictions.
  double accuracy(const at::Tensor& images, const at::Tensor& labels);

  /// Its weights by layer name ("c1.weight", ..., "fc2.bias").
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;

  void save(const std::string& path) const;
  /// Throws std::invalid_argument naming the file when it cannot be read or does not match.
  static std::shared_ptr<ImageClassifier> load(const std::string& path);

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

struct ClassifierTraining {
  int64_t epochs = 3;
  int64_t batch = 128;
  double lr = 1e-3;
  uint64_t seed = 0;
  /// Throws std::invalid_argument naming the field: epochs and batch must be >= 1 (batch at most
  /// the number of training images n), lr finite and > 0, and the batch's activations must fit
  /// in memory.
  void validate(int64_t n) const;
};

/// Trains on (images [n, 1, 28, 28] in [-1, 1], labels [n]) with Adam and cross-entropy,
/// shuffling with a generator seeded by `seed`; reports (epoch, mean loss) after each epoch.
std::shared_ptr<ImageClassifier> train_classifier(
    const ClassifierTraining& cfg, const at::Tensor& images, const at::Tensor& labels,
    const std::function<void(int64_t epoch, double loss)>& progress = {});

}  // namespace sdekit
