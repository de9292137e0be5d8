#pragma once
// The classifiers of classifier guidance by name (models/classifier_guidance.hpp):
//   exact                 the closed-form classifier of an exact mixture's components;
//   fmnist-noisy          the committed noise-conditional Fashion-MNIST classifier
//                         (data/fmnist/classifier_noisy.pt, vp-linear);
//   noisy:FILE.pt         one trained by `sdekit classifier --noisy`;
//   torchscript:FILE.pt   a TorchScript module forward(x, t) -> logits [n, K], t in the SDE's
//                         own time variable (as for TorchScript score models).
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/classifier_guidance.hpp"
#include "models/gaussian_mixture.hpp"
#include "schedules/noise_schedule.hpp"

namespace sdekit {

/// Loads the classifier `spec` for sampling under `kernel`, for samples of `event_shape`
/// (probed once through a TorchScript module to read K), on `device`. `mixture`: the model's
/// exact mixture, which "exact" needs. Throws std::invalid_argument naming the spec and the
/// problem: an unknown kind, a missing or unreadable file, "exact" without an exact model, a
/// noise-conditional classifier trained under another SDE, a TorchScript module whose forward
/// is not (x, t) or whose logits are not [n, K] with K >= 2.
std::shared_ptr<NoiseClassifier> load_noise_classifier(
    const std::string& spec, const SchedulePtr& kernel, const std::vector<int64_t>& event_shape,
    const std::optional<GaussianMixture>& mixture, const std::string& device = "cpu");

/// One kind of classifier spec: its name (a prefix with a placeholder for the file kinds) and its
/// one-line meaning.
struct ClassifierKind {
  std::string name;
  std::string summary;
};
/// Every kind load_noise_classifier accepts: the only list (help texts, `sdekit list`, errors).
const std::vector<ClassifierKind>& classifier_kinds();
/// "exact | fmnist-noisy | noisy:FILE.pt | torchscript:FILE.pt", for help texts.
std::string classifier_spec_help();

}  // namespace sdekit
