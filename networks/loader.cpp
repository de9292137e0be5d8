#include "networks/loader.hpp"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "models/builtin.hpp"
#include "models/classifier_guidance.hpp"
#include "models/conditional.hpp"
#include "networks/consistency_model.hpp"
#include "networks/guidance_classifiers.hpp"
#include "networks/network.hpp"
#include "networks/torchscript_model.hpp"

namespace sdekit {

namespace fs = std::filesystem;

std::string sdekit_data_dir() {
  if (const char* env = std::getenv("SDEKIT_DATA_DIR"); env && *env) return env;
#ifdef SDEKIT_SOURCE_DATA_DIR
  if (fs::is_directory(SDEKIT_SOURCE_DATA_DIR)) return SDEKIT_SOURCE_DATA_DIR;
#endif
#ifdef SDEKIT_INSTALL_DATA_DIR
  return SDEKIT_INSTALL_DATA_DIR;
#else
  return "data";
#endif
}

namespace {

// Binds labels and guidance to a conditional model; an unconditional one refuses guidance.
std::shared_ptr<ScoreModel> bind_labels(const std::shared_ptr<ConditionalModel>& cond,
                                        const std::shared_ptr<ScoreModel>& plain,
                                        int64_t num_classes, const ModelOptions& o,
                                        const std::string& spec) {
  if (num_classes == 0) {
    if (o.guidance != 0.0)
      throw std::invalid_argument("--guidance: model '" + spec +
                                  "' is not class-conditional; guidance needs class labels");
    if (o.label >= 0)
      throw std::invalid_argument("--class: model '" + spec + "' is not class-conditional");
    return plain;
  }
  if (o.unconditional) {
    if (o.guidance != 0.0)
      throw std::invalid_argument(
          "--guidance with --unconditional: classifier-free guidance needs the conditional "
          "model; drop one of them");
    return std::make_shared<GuidedModel>(cond, at::full({1}, num_classes, at::kLong), 0.0);
  }
  if (o.label < -1 || o.label > num_classes)
    throw std::invalid_argument("--class must lie in [0, " + std::to_string(num_classes - 1) +
                                "] (or -1 for balanced classes, " + std::to_string(num_classes) +
                                " for unconditional), got " + std::to_string(o.label));
  const at::Tensor labels =
      o.label == -1 ? at::arange(num_classes, at::kLong) : at::full({1}, o.label, at::kLong);
  return std::make_shared<GuidedModel>(cond, labels, o.guidance);
}

}  // namespace

namespace {

std::string file_of(const std::string& spec, const std::string& prefix) {
  const std::string path = spec.substr(prefix.size());
  if (path.empty() || !fs::exists(path))
    throw std::invalid_argument("model '" + spec + "': file '" + path + "' does not exist");
  return path;
}

LoadedModel load_network(const std::string& spec, const std::string& path, const ModelOptions& o) {
  LoadedModel m;
  const auto net = Network::load(path, o.device);
  m.event_shape = net->config().event_shape;
  m.num_classes = net->num_classes();
  m.model = bind_labels(net, net, m.num_classes, o, spec);
  m.description = spec + ": " + net->name();
  return m;
}

LoadedModel load_fmnist(const std::string& spec, const SchedulePtr&, const ModelOptions& o) {
  const std::string path = (fs::path(sdekit_data_dir()) / "fmnist" / "unet.pt").string();
  if (!fs::exists(path))
    throw std::invalid_argument("model 'fmnist': '" + path +
                                "' is missing (set SDEKIT_DATA_DIR to sdekit's data folder)");
  return load_network(spec, path, o);
}

LoadedModel load_net(const std::string& spec, const SchedulePtr&, const ModelOptions& o) {
  return load_network(spec, file_of(spec, "net:"), o);
}

LoadedModel load_cm(const std::string& spec, const SchedulePtr& kernel, const ModelOptions& o) {
  LoadedModel m;
  const auto cm = ConsistencyModel::load(file_of(spec, "cm:"), o.device);
  if (kernel && kernel->name() != cm->boundary().kernel().name())
    throw std::invalid_argument("model '" + spec + "' was distilled under the SDE '" + cm->sde() +
                                "'; sample it with --sde " + cm->sde() + " (got " + kernel->name() +
                                ")");
  if (o.guidance != 0.0)
    throw std::invalid_argument("--guidance: model '" + spec +
                                "' is a consistency model; guidance combines scores, not "
                                "consistency functions");
  m.event_shape = cm->network().config().event_shape;
  m.num_classes = cm->num_classes();
  m.model = bind_labels(cm, cm, m.num_classes, o, spec);
  m.description = spec + ": " + cm->name();
  return m;
}

LoadedModel load_torchscript(const std::string& spec, const SchedulePtr&, const ModelOptions& o) {
  LoadedModel m;
  const std::string path = file_of(spec, "torchscript:");
  if (o.param.empty())
    throw std::invalid_argument("model '" + spec +
                                "': --param is required (eps, x0, v, score, denoiser or flow)");
  if (o.event_shape.empty())
    throw std::invalid_argument("model '" + spec +
                                "': --event-shape is required (one sample's shape, e.g. 2 or "
                                "1,28,28)");
  const auto ts = TorchScriptModel::load(path, parse_param(o.param), o.device);
  m.event_shape = o.event_shape;
  // An unconditional forward(x, t) has no classes (and is no ConditionalModel to bind).
  m.num_classes = ts->conditional() ? ts->num_classes() : 0;
  m.model = bind_labels(ts, ts, m.num_classes, o, spec);
  m.description = spec + " (TorchScript, " + o.param + ")";
  return m;
}

LoadedModel load_exact(const ModelInfo& info, const std::string& spec, const SchedulePtr& kernel,
                       const ModelOptions& o) {
  LoadedModel m;
  GaussianMixture mix = info.load(std::string_view(spec).substr(info.prefix().size()));
  if (!kernel)
    throw std::invalid_argument("model '" + spec + "' needs an SDE with a Gaussian kernel");
  if (o.guidance != 0.0 || (o.label >= 0 && o.classifier.empty()))
    throw std::invalid_argument("model '" + spec +
                                "' is not class-conditional (--class, "
                                "--guidance)");
  m.event_shape = {mix.dim()};
  m.model = std::make_shared<GaussianMixtureModel>(mix, kernel);
  m.description = spec + " (exact Gaussian mixture, D = " + std::to_string(mix.dim()) + ")";
  m.mixture = std::move(mix);
  return m;
}

}  // namespace

bool ModelKind::matches(const std::string& spec) const {
  const auto colon = name.find(':');
  return colon == std::string::npos ? spec == name : spec.rfind(name.substr(0, colon + 1), 0) == 0;
}

const std::vector<ModelKind>& model_kinds() {
  static const std::vector<ModelKind> kinds = [] {
    std::vector<ModelKind> k;
    for (const ModelInfo& info : model_registry())
      k.push_back({info.name, info.summary,
                   [&info](const std::string& spec, const SchedulePtr& kernel,
                           const ModelOptions& o) { return load_exact(info, spec, kernel, o); }});
    k.push_back({"fmnist",
                 "the committed class-conditional Fashion-MNIST U-Net (--class, --guidance)",
                 load_fmnist});
    k.push_back({"net:FILE.pt", "a network trained by `sdekit train` (its model.pt)", load_net});
    k.push_back({"cm:FILE.pt",
                 "a consistency model of `sdekit distill consistency` (--sampler consistency)",
                 load_cm});
    k.push_back({"torchscript:FILE.pt",
                 "a TorchScript module forward(x, t) or forward(x, t, y) (--param, --event-shape)",
                 load_torchscript});
    return k;
  }();
  return kinds;
}

std::string model_spec_help() {
  std::string help;
  for (const auto& k : model_kinds()) help += (help.empty() ? "" : " | ") + k.name;
  return help;
}

namespace {

// The exact density of samples guided by the exact classifier at scale 1: the targeted
// components, with equal weights when the labels cycle through several.
GaussianMixture guided_mixture(const GaussianMixture& mix, const at::Tensor& labels) {
  const at::Tensor idx = std::get<0>(at::_unique(labels.to(at::kLong), /*sorted=*/true));
  const int64_t m = idx.size(0);
  return GaussianMixture(
      at::full({m}, 1.0 / double(m), at::kDouble), mix.means().index_select(0, idx),
      mix.covariances().index_select(0, idx),
      mix.name() + (m == 1 ? " component " + std::to_string(idx[0].item<int64_t>())
                           : " components, equal weights"));
}

void add_classifier(LoadedModel& m, const std::string& spec, const SchedulePtr& kernel,
                    const ModelOptions& o) {
  if (!kernel)
    throw std::invalid_argument(
        "--classifier: classifier guidance needs an SDE with a Gaussian "
        "kernel (alpha, sigma)");
  if (m.model->consistency_end())
    throw std::invalid_argument("--classifier: model '" + spec +
                                "' is a consistency model; guidance acts on scores, not on "
                                "consistency functions");
  if (o.unconditional && m.num_classes == 0)
    throw std::invalid_argument("--unconditional: model '" + spec +
                                "' is not class-conditional (it has no null label)");
  const auto clf = load_noise_classifier(o.classifier, kernel, m.event_shape, m.mixture, o.device);
  const int64_t K = clf->num_classes();
  if (m.num_classes > 0 && m.num_classes != K)
    throw std::invalid_argument("--classifier " + o.classifier + " has " + std::to_string(K) +
                                " classes, model '" + spec + "' " + std::to_string(m.num_classes) +
                                ": they must agree");
  if (o.label < -1 || o.label >= K)
    throw std::invalid_argument("--class must lie in [0, " + std::to_string(K - 1) +
                                "] (the classes of --classifier " + o.classifier +
                                ") or be -1 for balanced classes, got " + std::to_string(o.label));
  const at::Tensor labels =
      o.label == -1 ? at::arange(K, at::kLong) : at::full({1}, o.label, at::kLong);
  auto guided =
      std::make_shared<ClassifierGuidedModel>(m.model, clf, kernel, labels, o.classifier_scale);
  if (m.mixture && o.classifier_scale != 0.0) {
    if (o.classifier == "exact" && o.classifier_scale == 1.0)
      m.mixture = guided_mixture(*m.mixture, labels);
    else
      m.mixture.reset();
  }
  m.model = guided;
  m.classifier_guided = guided;
  std::ostringstream os;
  os << "; classifier guidance: " << clf->name() << ", scale " << o.classifier_scale << ", "
     << (o.label == -1 ? "balanced classes" : "class " + std::to_string(o.label));
  m.description += os.str();
}

}  // namespace

LoadedModel load_model(const std::string& spec, const SchedulePtr& kernel, const ModelOptions& o) {
  if (o.classifier.empty() && o.unconditional)
    throw std::invalid_argument(
        "--unconditional: it runs a class-conditional model with its null label under classifier "
        "guidance; without --classifier use --class K");
  if (!o.classifier.empty() && !std::isfinite(o.classifier_scale))
    throw std::invalid_argument("--classifier-scale must be finite, got " +
                                std::to_string(o.classifier_scale));
  for (const auto& k : model_kinds())
    if (k.matches(spec)) {
      LoadedModel m = k.load(spec, kernel, o);
      if (!o.classifier.empty()) add_classifier(m, spec, kernel, o);
      return m;
    }
  std::string valid;
  for (const auto& k : model_kinds()) valid += (valid.empty() ? "" : ", ") + k.name;
  throw std::invalid_argument("unknown model '" + spec + "'; valid: " + valid);
}

}  // namespace sdekit
