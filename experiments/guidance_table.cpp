#include "experiments/guidance_table.hpp"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>
#include <stdexcept>

#include "datasets/idx.hpp"
#include "experiments/detail/common_fields.hpp"
#include "experiments/detail/report_util.hpp"
#include "experiments/detail/spec_fields.hpp"
#include "experiments/detail/study_runner.hpp"
#include "experiments/frechet.hpp"
#include "experiments/table.hpp"
#include "models/classifier_guidance.hpp"
#include "networks/classifier.hpp"
#include "networks/guidance_classifiers.hpp"
#include "networks/loader.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/registry.hpp"
#include "solvers/sample.hpp"

namespace sdekit {

namespace fs = std::filesystem;
using detail::fmt;
using detail::json_num;
using detail::json_num_of;

namespace {

constexpr int64_t kClasses = 10;

std::string value_text(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

ModelOptions row_options(const GuidanceTableSpec& spec, const std::string& kind, double value) {
  ModelOptions o;
  o.label = -1;  // balanced classes
  if (kind == "classifier") {
    o.classifier = spec.classifier;
    o.classifier_scale = value;
    o.unconditional = true;
  } else {
    o.guidance = value;
  }
  return o;
}

void check_list(const std::vector<double>& v, const char* field) {
  std::set<double> seen;
  for (double x : v) {
    if (!std::isfinite(x))
      throw std::invalid_argument(std::string("field '") + field + "': values must be finite");
    if (!seen.insert(x).second)
      throw std::invalid_argument(std::string("field '") + field + "': " + value_text(x) +
                                  " appears twice");
  }
}

std::string feature_classifier_path() {
  return (fs::path(sdekit_data_dir()) / "fmnist" / "classifier.pt").string();
}

}  // namespace

std::string GuidanceRow::key() const {
  return kind + (kind == "classifier" ? "/s=" : "/w=") + value_text(value);
}

void validate(const GuidanceTableSpec& spec) {
  const SDEPtr sde = detail::with_field("sde", [&] { return make_sde(spec.sde); });
  if (!sde->schedule())
    throw std::invalid_argument("field 'sde': '" + spec.sde +
                                "' has no Gaussian kernel, which guidance needs");
  const auto sampler = detail::with_field("sampler", [&] { return make_sampler(spec.sampler); });
  if (sampler->adaptive() || sampler->consistency())
    throw std::invalid_argument("field 'sampler': '" + spec.sampler +
                                "' does not take a fixed step count; the table needs one");
  if (!spec.grid.empty()) detail::with_field("grid", [&] { return parse_grid(spec.grid); });
  if (spec.steps < 1 || spec.steps > detail::kMaxNfe)
    throw std::invalid_argument("field 'steps': must lie in [1, 10000000], got " +
                                std::to_string(spec.steps));
  if (spec.n < 20 || spec.n % kClasses != 0)
    throw std::invalid_argument(
        "field 'n': a multiple of 10 and >= 20 (balanced classes, two samples per class at "
        "least), got " +
        std::to_string(spec.n));
  if (spec.n > 5000)
    throw std::invalid_argument(
        "field 'n': at most 5000 (the floors split the 10000 test "
        "images in two), got " +
        std::to_string(spec.n));
  check_list(spec.scales, "scales");
  check_list(spec.weights, "weights");
  if (spec.scales.empty() && spec.weights.empty())
    throw std::invalid_argument("fields 'scales' and 'weights': both lists are empty");
  const LoadedModel lm = detail::with_field("model", [&] {
    return load_model(spec.model, sde->schedule(), row_options(spec, "cfg", 0.0));
  });
  if (lm.num_classes != kClasses || lm.event_shape != std::vector<int64_t>{1, 28, 28})
    throw std::invalid_argument("field 'model': '" + spec.model +
                                "' must be a class-conditional model of 1x28x28 images with 10 "
                                "classes (Fashion-MNIST)");
  if (!spec.scales.empty())
    detail::with_field("classifier", [&] {
      return load_model(spec.model, sde->schedule(), row_options(spec, "classifier", 1.0));
    });
  if (!fs::exists(feature_classifier_path()))
    throw std::invalid_argument("the feature classifier '" + feature_classifier_path() +
                                "' is missing (set SDEKIT_DATA_DIR to sdekit's data folder)");
}

const SpecSchema<GuidanceTableSpec>& guidance_spec_schema() {
  using S = GuidanceTableSpec;
  static const SpecSchema<S> schema = {
      {"model", &S::model, "A class-conditional Fashion-MNIST model: " + model_spec_help()},
      {"sde", &S::sde, "SDE / schedule"},
      {"sampler", &S::sampler, "Sampler (fixed steps)"},
      {"steps", &S::steps, "Steps of every row"},
      {"n", &S::n, "Samples per row (balanced classes; a multiple of 10)"},
      {"seed", &S::seed, "Seed of x_T (every row)"},
      {"grid", &S::grid, "Time grid (default: the schedule's)"},
      {"classifier", &S::classifier, "Classifier of the classifier-guidance rows"},
      {"scales", &S::scales, "Classifier guidance scales s (rows), comma separated"},
      {"weights", &S::weights, "Classifier-free guidance weights w (rows), comma separated"},
  };
  return schema;
}

std::string guidance_spec_json(const GuidanceTableSpec& spec) {
  GuidanceTableSpec s = spec;
  if (s.grid.empty()) s.grid = grid_name(default_grid(*make_sde(s.sde)->schedule()));
  return detail::write_spec(guidance_spec_schema(), s).dump();
}

GuidanceTableSpec guidance_spec_from_json(const std::string& text, const std::string& source) {
  return detail::spec_from_json(guidance_spec_schema(), text, source);
}

namespace {

nlohmann::json row_json(const GuidanceRow& r) {
  return {{"cell", r.key()},
          {"kind", r.kind},
          {"value", r.value},
          {"nfe", r.nfe},
          {"classifier_calls", r.classifier_calls},
          {"fd_class", json_num(r.fd_class)},
          {"fd_all", json_num(r.fd_all)},
          {"accuracy", json_num(r.accuracy)},
          {"seconds", r.seconds},
          {"classifier_seconds", r.classifier_seconds}};
}

GuidanceRow row_from_json(const nlohmann::json& j) {
  GuidanceRow r;
  r.kind = j.at("kind").get<std::string>();
  r.value = j.at("value").get<double>();
  r.nfe = j.at("nfe").get<int64_t>();
  r.classifier_calls = j.at("classifier_calls").get<int64_t>();
  r.fd_class = json_num_of(j, "fd_class");
  r.fd_all = json_num_of(j, "fd_all");
  r.accuracy = json_num_of(j, "accuracy");
  r.seconds = j.at("seconds").get<double>();
  r.classifier_seconds = j.at("classifier_seconds").get<double>();
  r.resumed = true;
  return r;
}

GaussianStats stats_of(const at::Tensor& f) {
  GaussianStats s;
  s.add(f);
  return s;
}

}  // namespace

GuidanceTableReport run_guidance_table(const GuidanceTableSpec& spec, const std::string& out_dir,
                                       bool fresh, const StudyProgressFn& progress) {
  validate(spec);
  const auto t_start = std::chrono::steady_clock::now();
  GuidanceTableReport rep;
  rep.spec = spec;
  const SDEPtr sde = make_sde(spec.sde);
  const SchedulePtr kernel = sde->schedule();
  const GridKind grid = spec.grid.empty() ? default_grid(*kernel) : parse_grid(spec.grid);
  rep.grid = grid_name(grid);
  rep.t_end = sde->default_t_end();
  for (double s : spec.scales) rep.rows.push_back({"classifier", s});
  for (double w : spec.weights) rep.rows.push_back({"cfg", w});

  detail::CellOps<GuidanceRow> ops;
  ops.read = row_from_json;
  ops.write = row_json;
  ops.cost = [](const GuidanceRow& r) { return r.kind == "cfg" && r.value != 0 ? 2.0 : 1.2; };
  detail::StudyRunner<GuidanceRow> runner(out_dir, guidance_spec_json(spec), fresh,
                                          {"results.csv", "results.md"}, rep.rows, ops, progress,
                                          t_start);

  // The feature classifier's features of the test set, by class, and the floors.
  const auto clf = ImageClassifier::load(feature_classifier_path());
  const ImageDataset test = load_fashion_mnist("test");
  const at::Tensor test_f = clf->features(test.images);
  const GaussianStats all_stats = stats_of(test_f);
  std::vector<at::Tensor> class_f;
  std::vector<GaussianStats> class_stats;
  for (int64_t c = 0; c < kClasses; ++c) {
    const at::Tensor rows = at::nonzero(test.labels == c).reshape({-1});
    class_f.push_back(test_f.index_select(0, rows));
    class_stats.push_back(stats_of(class_f.back()));
  }
  {
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(spec.seed ^ 0x7ef5eedULL);
    const int64_t per = spec.n / kClasses;
    double sum = 0;
    for (int64_t c = 0; c < kClasses; ++c) {
      const int64_t N = class_f[c].size(0);
      const at::Tensor perm = at::randperm(N, g, at::kLong);
      sum += frechet_distance(stats_of(class_f[c].index_select(0, perm.narrow(0, 0, per))),
                              stats_of(class_f[c].index_select(0, perm.narrow(0, per, N - per))));
    }
    rep.floor_fd_class = sum / double(kClasses);
    const at::Tensor perm = at::randperm(test_f.size(0), g, at::kLong);
    rep.floor_fd_all = frechet_distance(
        stats_of(test_f.index_select(0, perm.narrow(0, 0, spec.n))),
        stats_of(test_f.index_select(0, perm.narrow(0, spec.n, test_f.size(0) - spec.n))));
  }

  const auto sampler = make_sampler(spec.sampler);
  runner.run([&](GuidanceRow& r) {
    LoadedModel lm = load_model(spec.model, kernel, row_options(spec, r.kind, r.value));
    SampleSpec ss;
    ss.steps = spec.steps;
    ss.grid = grid;
    ss.grid_file = grid_file_of(spec.grid);
    ss.t_end = rep.t_end;
    ss.n = spec.n;
    ss.event_shape = lm.event_shape;
    ss.seed = spec.seed;
    // One generator per row, as the results folders of this study have always been computed (it
    // runs in one process; its spec has no rng field).
    ss.rng = RngKind::Generator;
    const auto t0 = std::chrono::steady_clock::now();
    const SampleResult res = sample(*sampler, *lm.model, *sde, ss);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.nfe = res.nfe;
    if (lm.classifier_guided) {
      r.classifier_calls = lm.classifier_guided->classifier_calls();
      r.classifier_seconds = lm.classifier_guided->classifier_seconds();
    }
    const at::Tensor f = clf->features(res.x);
    const at::Tensor labels = at::arange(spec.n, at::kLong).remainder(kClasses);
    r.fd_all = frechet_distance(stats_of(f), all_stats);
    double sum = 0;
    for (int64_t c = 0; c < kClasses; ++c)
      sum += frechet_distance(
          stats_of(f.index_select(0, at::arange(c, spec.n, kClasses, at::kLong))), class_stats[c]);
    r.fd_class = sum / double(kClasses);
    r.accuracy = clf->logits(res.x).argmax(1).eq(labels).to(at::kDouble).mean().item<double>();
  });
  rep.resumed = runner.resumed();
  rep.computed = runner.computed();
  return rep;
}

std::string guidance_protocol(const GuidanceTableReport& r) {
  std::ostringstream os;
  os << "Model " << r.spec.model << ", SDE " << r.spec.sde << ", sampler " << r.spec.sampler << ", "
     << r.spec.steps << " steps (" << r.grid << " grid), t_end = " << r.t_end
     << ", float32. Every row: n = " << r.spec.n << " samples from the same x_T (seed "
     << r.spec.seed << "), balanced classes (sample i has class i mod 10).\n"
     << "Classifier guidance (s): the model's null label (unconditional) guided by "
     << r.spec.classifier << " at scale s, one classifier gradient per step (not in the NFE). "
     << "Classifier-free guidance (w): the conditional model, (1 + w) cond - w uncond, 2 network "
        "calls per step for w != 0.\n"
     << "Metrics in the feature classifier's space (data/fmnist/classifier.pt, d = 128), not the "
        "guiding classifier's: fd_class = the Frechet distance of each class's samples to the test "
        "images of that class, averaged over the 10 classes; fd_all = the Frechet distance of all "
        "samples to the 10000 test images; accuracy = the fraction of samples the feature "
        "classifier assigns to their class.\n"
     << "Floors (exact samples at this n): fd_class " << fmt(r.floor_fd_class, 4) << " ("
     << r.spec.n / kClasses << " random test images per class against the others of that class), "
     << "fd_all " << fmt(r.floor_fd_all, 4) << " (" << r.spec.n
     << " random test images against the other " << 10000 - r.spec.n << ").\n";
  return os.str();
}

namespace {
Table results_table(const GuidanceTableReport& r, bool csv) {
  Table t;
  t.column("guidance", Table::Align::Left)
      .column("scale")
      .column("NFE")
      .column("classifier calls")
      .column("fd_class")
      .column("fd_all")
      .column(csv ? "accuracy" : "accuracy (%)")
      .column("seconds");
  for (const auto& row : r.rows)
    t.row({row.kind == "classifier" ? "classifier" : "classifier-free", value_text(row.value),
           std::to_string(row.nfe), std::to_string(row.classifier_calls),
           csv ? detail::csv_num(row.fd_class) : fmt(row.fd_class, 4),
           csv ? detail::csv_num(row.fd_all) : fmt(row.fd_all, 4),
           csv ? detail::csv_num(row.accuracy) : fmt(100 * row.accuracy, 4), fmt(row.seconds, 3)});
  return t;
}
}  // namespace

std::string guidance_markdown(const GuidanceTableReport& r) {
  return guidance_protocol(r) + "\n" + results_table(r, false).markdown();
}

std::string guidance_report_json(const GuidanceTableReport& r) {
  nlohmann::json j;
  j["spec"] = nlohmann::json::parse(guidance_spec_json(r.spec));
  j["grid"] = r.grid;
  j["t_end"] = r.t_end;
  j["floor_fd_class"] = json_num(r.floor_fd_class);
  j["floor_fd_all"] = json_num(r.floor_fd_all);
  j["rows"] = nlohmann::json::array();
  for (const auto& row : r.rows) {
    nlohmann::json x = row_json(row);
    x["resumed"] = row.resumed;
    j["rows"].push_back(x);
  }
  j["resumed"] = r.resumed;
  j["computed"] = r.computed;
  return j.dump(2);
}

void write_guidance_tables(const GuidanceTableReport& r, const std::string& out_dir) {
  detail::write_text_atomically((fs::path(out_dir) / "results.csv").string(),
                                results_table(r, true).csv());
  detail::write_text_atomically((fs::path(out_dir) / "results.md").string(), guidance_markdown(r));
}

}  // namespace sdekit
