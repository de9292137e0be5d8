#pragma once
// Models by name, for the command line and the experiments: the exact mixtures, networks trained
// by `sdekit train`, the committed Fashion-MNIST model, and TorchScript files from Python.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/gaussian_mixture.hpp"
#include "models/score_model.hpp"
#include "schedules/noise_schedule.hpp"

namespace sdekit {

class ClassifierGuidedModel;

struct ModelOptions {
  std::string param;                 // torchscript: eps | x0 | v | score | denoiser (required)
  std::vector<int64_t> event_shape;  // torchscript: the shape of one sample (required)
  /// Class-conditional models: a class in [0, K), or -1 for balanced classes (row i gets class
  /// i mod K), or K for the null class (unconditional).
  int64_t label = -1;
  double guidance = 0.0;  // classifier-free guidance weight w (0: plain conditional)
  std::string device = "cpu";
  /// Classifier guidance (models/classifier_guidance.hpp): a classifier spec
  /// (networks/guidance_classifiers.hpp), empty for none. Its target is `label` (a class in
  /// [0, K), or -1 for balanced classes); a class-conditional model takes the same labels, or
  /// its null label with `unconditional`.
  std::string classifier;
  double classifier_scale = 1.0;
  bool unconditional = false;
};

struct LoadedModel {
  std::shared_ptr<ScoreModel> model;
  std::optional<GaussianMixture> mixture;  // the exact density, for analytic models
  std::vector<int64_t> event_shape;
  int64_t num_classes = 0;
  std::string description;
  /// Set when `classifier` was given: the guided model (the same object as `model`).
  std::shared_ptr<ClassifierGuidedModel> classifier_guided;
};

/// The folder of sdekit's committed assets (Fashion-MNIST model, classifier, statistics):
/// $SDEKIT_DATA_DIR if set, else the source tree's data/ folder when present, else the
/// installed share/sdekit.
std::string sdekit_data_dir();

/// "ring2d", "gmm64", "gmm:FILE.json": exact mixtures (scores under `kernel`);
/// "net:FILE.pt": a network written by `sdekit train` (model.pt);
/// "fmnist": the committed class-conditional Fashion-MNIST U-Net (data/fmnist/unet.pt);
/// "torchscript:FILE.pt": a TorchScript module, forward(x, t) or forward(x, t, y), with
/// options.param and options.event_shape;
/// "cm:FILE.pt": a consistency model written by `sdekit distill consistency` (sample it with the
/// "consistency" sampler under the SDE it was distilled with).
/// Throws std::invalid_argument naming the spec and the problem (unknown kind, missing file,
/// missing --param / --event-shape, a label outside [0, K], guidance on an unconditional model).
/// With options.classifier, the model is wrapped in a ClassifierGuidedModel; for an exact
/// mixture guided by its exact classifier at scale 1, `mixture` becomes the exact density the
/// guided samples follow (component k alone, or the components with equal weights for balanced
/// classes), and is dropped at other scales (no closed form).
LoadedModel load_model(const std::string& spec, const SchedulePtr& kernel,
                       const ModelOptions& options = {});

/// One kind of model spec: its name ("fmnist", or a prefix with a placeholder, "net:FILE.pt"),
/// its one-line meaning, and its loader. The exact mixtures (models/builtin.hpp) come first.
struct ModelKind {
  std::string name;
  std::string summary;
  std::function<LoadedModel(const std::string& spec, const SchedulePtr& kernel,
                            const ModelOptions& options)>
      load;
  bool matches(const std::string& spec) const;
};

/// Every model kind load_model accepts: the only list (help texts, `sdekit list` and errors
/// are generated from it).
const std::vector<ModelKind>& model_kinds();

/// The model specs load_model accepts, for help texts ("ring2d | gmm64 | ...").
std::string model_spec_help();

}  // namespace sdekit
