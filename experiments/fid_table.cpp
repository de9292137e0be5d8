#include "experiments/fid_table.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <sstream>
#include <stdexcept>

#include "datasets/idx.hpp"
#include "datasets/toy.hpp"
#include "experiments/detail/common_fields.hpp"
#include "experiments/detail/report_util.hpp"
#include "experiments/detail/spec_fields.hpp"
#include "experiments/detail/study_runner.hpp"
#include "experiments/distributed.hpp"
#include "experiments/features.hpp"
#include "experiments/frechet.hpp"
#include "experiments/kid.hpp"
#include "experiments/npy_io.hpp"
#include "experiments/results_store.hpp"
#include "experiments/stats_io.hpp"
#include "experiments/table.hpp"
#include "models/builtin.hpp"
#include "models/dtype.hpp"
#include "models/resources.hpp"
#include "networks/guidance_classifiers.hpp"
#include "networks/loader.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/compat.hpp"
#include "solvers/registry.hpp"
#include "solvers/row_noise.hpp"
#include "solvers/sample.hpp"

namespace sdekit {

namespace fs = std::filesystem;
using detail::fmt;
using detail::json_num;
using detail::json_num_of;
using nlohmann::json;

namespace {

// "mixture" | "npy:PATH" | "stats:PATH" -> (kind, path).
std::pair<std::string, std::string> parse_reference(const std::string& ref) {
  if (ref == "mixture") return {"mixture", ""};
  if (ref == "fashion-mnist") return {"fashion-mnist", ""};
  if (ref.rfind("toy:", 0) == 0) {
    const auto& names = toy_dataset_names();
    if (std::find(names.begin(), names.end(), ref.substr(4)) == names.end()) {
      std::string valid;
      for (const auto& n : names) valid += (valid.empty() ? "" : ", ") + n;
      throw std::invalid_argument("unknown toy data set '" + ref.substr(4) + "'; valid: " + valid);
    }
    return {"toy", ref.substr(4)};
  }
  for (const char* kind : {"npy", "stats"}) {
    const std::string prefix = std::string(kind) + ":";
    if (ref.rfind(prefix, 0) == 0 && ref.size() > prefix.size())
      return {kind, ref.substr(prefix.size())};
  }
  throw std::invalid_argument(
      "unknown reference '" + ref +
      "'; valid: mixture, fashion-mnist, toy:NAME, npy:FILE.npy, stats:FILE.npz");
}

json cell_json(const FidCell& c, const FidTableSpec& spec, const std::string& reference) {
  return json{{"cell", c.key()},
              {"sampler", c.sampler},
              {"target_nfe", c.target_nfe},
              {"steps", c.steps},
              {"nfe", c.nfe},
              {"fd", json_num(c.fd)},
              {"kid", json_num(c.kid)},
              {"kid_se", json_num(c.kid_se)},
              {"seconds", c.seconds},
              {"failure", c.failure},
              // The protocol travels with every result.
              {"n", spec.n},
              {"seed", spec.seed},
              {"features", spec.features},
              {"reference", reference}};
}

FidCell cell_from_json(const json& j) {
  FidCell c;
  c.sampler = j.at("sampler").get<std::string>();
  c.target_nfe = j.at("target_nfe").get<int>();
  c.steps = j.at("steps").get<int>();
  c.nfe = j.at("nfe").get<int64_t>();
  c.fd = json_num_of(j, "fd");
  c.kid = json_num_of(j, "kid");
  c.kid_se = json_num_of(j, "kid_se");
  c.seconds = j.at("seconds").get<double>();
  c.failure = j.value("failure", std::string());
  c.resumed = true;
  return c;
}

// A cell's feature statistics over every rank's rows (docs/theory.md section 10.2): each rank
// sends its count, sum and sum of outer products about the shift c (the reference mean, the same
// on every rank), summed in float64 in one all-reduce; then mean = c + S1 / n and
// M2 = S2 - S1 S1^T / n. In one process the same arithmetic with nothing to add.
GaussianStats reduce_cell_stats(const at::Tensor& features, const at::Tensor& shift) {
  GaussianStats local;
  local.add(features);
  const int64_t d = shift.size(0);
  at::Tensor buf = at::zeros({1 + d + d * d}, at::kDouble);
  if (local.count > 0) {
    const double m = static_cast<double>(local.count);
    const at::Tensor dm = local.mu - shift;
    buf[0] = m;
    buf.narrow(0, 1, d).copy_(dm * m);
    buf.narrow(0, 1 + d, d * d).copy_((local.m2 + at::outer(dm, dm) * m).reshape({-1}));
  }
  dist::all_reduce_sum(buf, "the cell's feature statistics");
  GaussianStats st;
  st.count = static_cast<int64_t>(buf[0].item<double>());
  const double n = static_cast<double>(st.count);
  const at::Tensor s1 = buf.narrow(0, 1, d), s2 = buf.narrow(0, 1 + d, d * d).reshape({d, d});
  st.mu = shift + s1 / n;
  st.m2 = s2 - at::outer(s1, s1) / n;
  return st;
}

std::string file_part(std::string key) {
  for (char& ch : key)
    if (ch == '/' || ch == '=') ch = '_';
  return key;
}

}  // namespace

std::string FidCell::key() const {
  return sampler + "/nfe=" + std::to_string(target_nfe);
}

namespace {
detail::GuidanceFields guidance_fields(const FidTableSpec& s) {
  return {s.classifier, s.classifier_scale, s.label, s.unconditional};
}
}  // namespace

void validate(const FidTableSpec& spec) {
  if (spec.samplers.empty()) throw std::invalid_argument("field 'samplers': the list is empty");
  const SDEPtr sde = detail::check_common_fields(spec.sde, spec.samplers, spec.nfe, spec.dtype,
                                                 spec.t_end, spec.grid);
  const LoadedModel lm = detail::with_field("model", [&] {
    return load_model(spec.model, sde->schedule(),
                      detail::study_model_options(spec.param, spec.event_shape, spec.guidance,
                                                  guidance_fields(spec)));
  });
  if (!spec.compat.empty()) detail::with_field("compat", [&] { return parse_compat(spec.compat); });
  if (spec.n < 2)
    throw std::invalid_argument("field 'n': needs >= 2 samples per cell, got " +
                                std::to_string(spec.n));
  if (spec.n_ref < 2)
    throw std::invalid_argument("field 'n_ref': needs >= 2 reference samples, got " +
                                std::to_string(spec.n_ref));
  int64_t D = 1;
  for (int64_t v : lm.event_shape) D *= v;
  // A cell's samples with a sampler's buffers, and the reference set with its features.
  require_memory("field 'n' (" + std::to_string(spec.n) + ")", 64.0 * 8.0 * double(spec.n) * D);
  require_memory("field 'n_ref' (" + std::to_string(spec.n_ref) + ")",
                 8.0 * 8.0 * double(spec.n_ref) * D);
  detail::with_field("features", [&] {
    check_feature_space(spec.features);
    return 0;
  });
  const auto [kind, path] =
      detail::with_field("reference", [&] { return parse_reference(spec.reference); });
  if (kind == "mixture" && !lm.mixture)
    throw std::invalid_argument("field 'reference': 'mixture' needs an analytic model; model '" +
                                spec.model + "' is not one (use fashion-mnist, npy: or stats:)");
  if (kind == "toy" && lm.event_shape != std::vector<int64_t>{2})
    throw std::invalid_argument("field 'reference': toy data sets are 2-D; model '" + spec.model +
                                "' is not");
  // The reference is rank 0's alone (the others need not have its file).
  if (dist::writer() && kind != "toy" && !path.empty() && !fs::exists(path))
    throw std::invalid_argument("field 'reference': file '" + path + "' does not exist");
  const RngKind rng = detail::with_field("rng", [&] { return parse_rng(spec.rng, "field 'rng'"); });
  if (dist::active() && rng == RngKind::Generator)
    throw std::invalid_argument(
        "field 'rng': 'generator' draws a cell's noise from one stream that cannot be split over "
        "processes (WORLD_SIZE=" +
        std::to_string(dist::world()) + "); use rows");
  if (dist::active() && spec.n < dist::world())
    throw std::invalid_argument("field 'n': " + std::to_string(spec.n) + " samples per cell over " +
                                std::to_string(dist::world()) +
                                " processes leave a rank without rows");
  if (spec.kid_subsets < 1)
    throw std::invalid_argument("field 'kid_subsets': must be >= 1, got " +
                                std::to_string(spec.kid_subsets));
  if (spec.kid_subset_size < 2)
    throw std::invalid_argument("field 'kid_subset_size': must be >= 2, got " +
                                std::to_string(spec.kid_subset_size));
}

namespace {
std::string features_help() {
  std::string help = "Feature space:";
  for (const auto& k : feature_space_kinds()) help += " " + k.name + " (" + k.summary + ");";
  help.pop_back();
  return help;
}
}  // namespace

const SpecSchema<FidTableSpec>& fid_spec_schema() {
  using S = FidTableSpec;
  static const SpecSchema<S> schema = {
      {"model", &S::model, model_spec_help()},
      {"sde", &S::sde, "SDE / schedule"},
      {"samplers", &S::samplers, "Samplers, comma separated"},
      {"nfe", &S::nfe, "NFE list, comma separated", false, true,
       [](S& s, const std::string& text) { s.nfe = parse_nfe_list(text); }},
      {"n", &S::n, "Samples per cell"},
      {"seed", &S::seed, "Seed of x_T and the sampler noise (every cell)"},
      {"rng", &S::rng,
       "rows: row i's x_T and noise depend only on (seed, i), the same over any number of "
       "processes | generator: one generator per cell (one process)"},
      {"dtype", &S::dtype, "float32 | float64"},
      {"grid", &S::grid, "Time grid (default: the schedule's)"},
      {"t_end",
       &S::t_end,
       "End time in (0, T) (default: the SDE's)",
       false,
       false,
       {},
       [](const S& s) {
         if (s.t_end == -1.0)
           throw std::invalid_argument("--t-end must lie inside the SDE's time domain, got -1");
       }},
      {"features", &S::features, features_help()},
      {"reference", &S::reference,
       "mixture (exact samples) | toy:NAME (exact samples of a 2-D toy set) | fashion-mnist (test "
       "set) | npy:FILE.npy (data set) | stats:FILE.npz (mu, sigma)"},
      {"n_ref", &S::n_ref, "Exact reference samples (references mixture, toy:NAME)"},
      {"kid_subsets", &S::kid_subsets, "KID: subsets"},
      {"kid_subset_size", &S::kid_subset_size, "KID: subset size"},
      {"guidance", &S::guidance, "Class-conditional models (balanced classes): guidance weight"},
      {"param", &S::param, "torchscript models: eps | x0 | v | score | denoiser | flow", true},
      {"event_shape", &S::event_shape, "torchscript models: one sample's shape, e.g. 2 or 1,28,28",
       true},
      {"compat", &S::compat,
       "Conventions of a reference implementation for every sampler: none | k-diffusion (grids "
       "end with the step to sigma = 0) | dpm-solver",
       true, false},
      {"classifier", &S::classifier, "Classifier guidance: " + classifier_spec_help(), true},
      {"classifier_scale", &S::classifier_scale, "Classifier guidance: scale s", true},
      {"class", &S::label,
       "Class of classifier guidance and of class-conditional models (-1: balanced classes)", true},
      {"unconditional", &S::unconditional,
       "Classifier guidance: 1 runs a class-conditional model from its null label", true},
  };
  return schema;
}

std::string fid_spec_json(const FidTableSpec& spec) {
  FidTableSpec s = spec;
  if (s.grid.empty()) s.grid = grid_name(default_grid(*make_sde(s.sde)->schedule()));
  return detail::write_spec(fid_spec_schema(), s).dump();
}

FidTableSpec fid_spec_from_json(const std::string& text, const std::string& source) {
  return detail::spec_from_json(fid_spec_schema(), text, source);
}

FidTableReport run_fid_table(const FidTableSpec& spec, const std::string& out_dir, bool fresh,
                             const std::function<void(const FidProgress&)>& progress) {
  validate(spec);
  const auto t_start = std::chrono::steady_clock::now();
  FidTableReport rep;
  rep.spec = spec;
  const SDEPtr sde = make_sde(spec.sde);
  const SchedulePtr kernel = sde->schedule();
  const LoadedModel lm =
      load_model(spec.model, kernel,
                 detail::study_model_options(spec.param, spec.event_shape, spec.guidance,
                                             guidance_fields(spec)));
  ScoreModel& model = *lm.model;
  int64_t D = 1;
  for (int64_t v : lm.event_shape) D *= v;
  const GridKind grid = spec.grid.empty() ? default_grid(*kernel) : parse_grid(spec.grid);
  rep.grid = grid_name(grid);
  rep.t_end = spec.t_end < 0 ? sde->default_t_end() : spec.t_end;
  const auto features = make_feature_space(spec.features);
  rep.feature_space = features->name();
  const auto [ref_kind, ref_path] = parse_reference(spec.reference);

  // The plan. Under --compat k-diffusion every sampler but a consistency one ends with the step
  // to sigma = 0, one of the cell's NFE.
  const Compat compat = parse_compat(spec.compat.empty() ? "none" : spec.compat);
  auto to_zero = [&](const std::string& name) {
    return compat_to_zero(compat) && !make_sampler(name)->consistency();
  };
  for (const auto& name : spec.samplers) {
    const auto probe = make_sampler(name);
    std::vector<int> nfes = spec.nfe;
    std::sort(nfes.begin(), nfes.end());
    nfes.erase(std::unique(nfes.begin(), nfes.end()), nfes.end());
    for (int nfe : nfes) {
      FidCell c;
      c.sampler = name;
      c.target_nfe = nfe;
      if (probe->adaptive() || nfe < probe->nfe_per_step()) {
        c.failure = probe->adaptive()
                        ? "adaptive sampler: chooses its own NFE"
                        : "NFE " + std::to_string(nfe) + " buys no step (" +
                              std::to_string(probe->nfe_per_step()) + " NFE per step)";
      } else if (to_zero(name) && nfe < 2) {
        c.failure = "NFE 1 leaves nothing for the grid: the step to sigma = 0 takes one call";
      } else {
        SamplerOptions o = compat_options(compat, name);
        const bool z = to_zero(name);
        o.nfe_budget = z ? nfe - 1 : nfe;
        c.steps = (z ? 1 : 0) + make_sampler(name, o)->steps_for_nfe(o.nfe_budget);
      }
      rep.cells.push_back(c);
    }
  }

  detail::CellOps<FidCell> ops;
  ops.read = cell_from_json;
  ops.write = [&](const FidCell& c) { return cell_json(c, spec, rep.reference); };
  ops.cost = [](const FidCell& c) { return double(c.target_nfe); };
  ops.runnable = [](const FidCell& c) { return c.failure.empty(); };  // planned as not runnable
  detail::StudyRunner<FidCell> runner(out_dir, fid_spec_json(spec), fresh,
                                      {"reference_stats.npz", "results.csv", "results.md"},
                                      rep.cells, ops, progress, t_start);
  // Rank 0 alone holds the results folder and the reference (docs/theory.md section 10.2); the
  // others need only the shift of the statistics, which it sends them.
  const bool writer = dist::writer();

  // Reference features / statistics, and the floor.
  // Under k-diffusion's conventions the samples end at sigma = 0: the reference is the data.
  const bool at_zero = compat_to_zero(compat);
  const double a = at_zero ? 1.0 : kernel->alpha(rep.t_end),
               s = at_zero ? 0.0 : kernel->sigma(rep.t_end);
  at::Tensor ref_features;
  GaussianStats ref_stats;
  if (!writer) {
    // Nothing of the reference but the shift of the statistics (below).
  } else if (ref_kind == "mixture" || ref_kind == "toy") {
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(spec.seed ^ 0x7ef5eedULL);
    // Exact samples of p(t_end): alpha x0 + sigma z, x0 from the mixture or the toy generator.
    auto draw = [&](int64_t count) {
      if (ref_kind == "mixture") return lm.mixture->sample(count, a, s, g);
      const at::Tensor x0 = toy_dataset(ref_path, count, g).to(at::kDouble);
      return x0 * a + at::randn(x0.sizes(), g, at::kDouble) * s;
    };
    ref_features = (*features)(draw(spec.n_ref));
    ref_stats.add(ref_features);
    rep.reference =
        std::to_string(spec.n_ref) + " exact samples of " +
        (at_zero ? "p(0), the data," : "p(t_end)") + " of " +
        (ref_kind == "mixture" ? spec.model + (spec.classifier.empty()
                                                   ? std::string()
                                                   : " under guidance (" + lm.mixture->name() + ")")
                               : "the toy set " + ref_path);
    const at::Tensor other = (*features)(draw(spec.n));
    GaussianStats o;
    o.add(other);
    rep.floor_fd = frechet_distance(o, ref_stats);
    const int64_t m = std::min({spec.kid_subset_size, spec.n, spec.n_ref});
    const KidResult k =
        kernel_inception_distance(other, ref_features, spec.kid_subsets, m, spec.seed);
    rep.floor_kid = k.mean;
    rep.floor_kid_se = k.std_error;
    rep.floor_note =
        "FD/KID of " + std::to_string(spec.n) + " further exact samples against the reference set";
  } else if (ref_kind == "npy" || ref_kind == "fashion-mnist") {
    at::Tensor data;
    if (ref_kind == "npy") {
      data = read_npy(ref_path);
      rep.reference = "data set " + ref_path + " (" + std::to_string(data.size(0)) + " rows)";
    } else {
      data = load_fashion_mnist("test").images;
      rep.reference = "the Fashion-MNIST test set (10000 images in [-1, 1])";
    }
    if (data.dim() < 2 || data.size(0) < 2 || data[0].numel() != D)
      throw std::invalid_argument("reference '" + spec.reference +
                                  "': expected at least 2 rows of " + std::to_string(D) +
                                  " values for model " + spec.model + ", got an array of shape " +
                                  detail::shape_text(data.sizes()));
    require_finite(data, "reference '" + spec.reference + "'");
    std::vector<int64_t> shape = {data.size(0)};
    shape.insert(shape.end(), lm.event_shape.begin(), lm.event_shape.end());
    ref_features = (*features)(data.reshape(shape));
    ref_stats.add(ref_features);
    if (data.size(0) >= 2 * spec.n) {
      at::Generator g = at::make_generator<at::CPUGeneratorImpl>(spec.seed ^ 0x7ef5eedULL);
      const at::Tensor perm = at::randperm(data.size(0), g, at::kLong);
      const at::Tensor A = ref_features.index_select(0, perm.narrow(0, 0, spec.n)),
                       B = ref_features.index_select(0,
                                                     perm.narrow(0, spec.n, data.size(0) - spec.n));
      GaussianStats sa, sb;
      sa.add(A);
      sb.add(B);
      rep.floor_fd = frechet_distance(sa, sb);
      const KidResult k = kernel_inception_distance(
          A, B, spec.kid_subsets, std::min(spec.kid_subset_size, spec.n), spec.seed);
      rep.floor_kid = k.mean;
      rep.floor_kid_se = k.std_error;
      rep.floor_note = "FD/KID of " + std::to_string(spec.n) +
                       " random rows of the data set against its other " +
                       std::to_string(data.size(0) - spec.n) + " rows";
    } else {
      rep.floor_note = "not available: the data set has fewer than 2n rows";
    }
  } else {
    const StatsFile f = read_stats_npz(ref_path);
    check_covariance(f, ref_path);
    // Only mean and covariance enter the distance: without a stored n, any count >= 2 with
    // m2 = sigma (count - 1) reproduces sigma exactly.
    ref_stats.count = f.count > 1 ? f.count : 2;
    ref_stats.mu = f.mu;
    ref_stats.m2 = f.sigma * static_cast<double>(ref_stats.count - 1);
    rep.reference = "statistics file " + ref_path +
                    (f.count > 0 ? " (n = " + std::to_string(f.count) + ")" : std::string());
    rep.floor_note =
        "not available for a statistics-file reference (no samples); KID needs "
        "samples too";
  }
  at::Tensor shift;
  if (writer) {
    rep.feature_dim = ref_stats.dim();
    rep.reference_rows = ref_features.defined() ? ref_features.size(0) : ref_stats.count;
    write_stats_npz(runner.store().path("reference_stats.npz"), ref_stats);
    fs::create_directories(runner.store().path("stats"));
    shift = ref_stats.mu.clone();
  }
  // Whether KID needs the cell's features gathered from every rank (a reference with samples).
  bool need_kid = ref_features.defined();
  if (dist::active()) {
    const json info = json::parse(dist::broadcast_text(
        json{{"d", rep.feature_dim}, {"kid", need_kid}}.dump(), "the reference statistics"));
    need_kid = info.at("kid").get<bool>();
    if (!writer) shift = at::empty({info.at("d").get<int64_t>()}, at::kDouble);
    dist::broadcast_tensor(shift, "the reference statistics");
  }

  const auto opts = at::TensorOptions().dtype(parse_dtype(spec.dtype));
  const RngKind rng = parse_rng(spec.rng, "field 'rng'");
  dist::reset_bytes_sent();
  runner.run(
      [&](FidCell& c) {
        SamplerOptions o = compat_options(compat, c.sampler);
        const bool ss_to_zero = to_zero(c.sampler);
        o.nfe_budget = ss_to_zero ? c.target_nfe - 1 : c.target_nfe;
        const auto sampler = make_sampler(c.sampler, o);
        SampleSpec ss;
        ss.steps = c.steps;
        ss.to_zero = ss_to_zero;
        ss.grid = grid;
        ss.grid_file = grid_file_of(spec.grid);
        ss.t_end = rep.t_end;
        ss.n = spec.n;
        ss.event_shape = lm.event_shape;
        ss.seed = spec.seed;
        ss.rng = rng;
        ss.options = opts;
        const auto t0 = std::chrono::steady_clock::now();
        // This rank's rows of the cell (all of them in one process).
        const auto [lo, hi] = dist::shard(spec.n);
        at::Tensor f;
        std::string failure;
        try {
          const SampleResult res = sample_rows(*sampler, model, *sde, ss, lo, hi);
          c.nfe = res.nfe;
          f = (*features)(res.x);
        } catch (const NonFiniteError& e) {
          failure = e.what();
        }
        // Every rank learns whether a rank's rows failed; rank 0 records the first such rank's reason.
        if (dist::active()) {
          at::Tensor bad = at::zeros({dist::world()}, at::kLong);
          bad[dist::rank()] = failure.empty() ? 0 : 1;
          dist::all_reduce_sum(bad, "the cell's outcome");
          const at::Tensor failed = bad.nonzero();
          if (failed.numel() > 0) {
            const int first = static_cast<int>(failed[0][0].item<int64_t>());
            const std::string k = "failure/" + c.key();
            if (dist::rank() == first && first != 0) dist::put(k, failure);
            if (writer && first != 0)
              failure = "rank " + std::to_string(first) + ": " +
                        dist::take_from(k, first, "the reason cell " + c.key() + " failed");
            if (failure.empty()) failure = "rank " + std::to_string(first) + " failed";
          }
        }
        if (failure.empty()) {
          const GaussianStats st = reduce_cell_stats(f, shift);
          at::Tensor all_f;
          if (need_kid) all_f = dist::all_gather_rows(f.contiguous(), "the cell's features (KID)");
          if (writer) {
            c.fd = frechet_distance(st, ref_stats);
            if (need_kid) {
              const KidResult k = kernel_inception_distance(
                  all_f, ref_features, spec.kid_subsets,
                  std::min({spec.kid_subset_size, spec.n, ref_features.size(0)}), spec.seed);
              c.kid = k.mean;
              c.kid_se = k.std_error;
            }
            write_stats_npz(runner.store().path("stats/" + file_part(c.key()) + ".npz"), st);
          }
        } else {
          c.failure = failure;
        }
        c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      },
      detail::Share::Rows);
  if (dist::active()) {
    at::Tensor b = at::full({1}, static_cast<int64_t>(dist::bytes_sent()), at::kLong);
    dist::all_reduce_sum(b, "the byte counts");
    rep.bytes_sent = static_cast<uint64_t>(b.item<int64_t>());
  }
  rep.resumed = runner.resumed();
  rep.computed = runner.computed();
  return rep;
}

std::string fid_protocol(const FidTableReport& r) {
  std::ostringstream os;
  os << "Model " << r.spec.model << ", SDE " << r.spec.sde << ", grid " << r.grid
     << ", t_end = " << r.t_end << ", " << r.spec.dtype << ". Every cell: n = " << r.spec.n
     << " samples from the same x_T and noise seed (" << r.spec.seed << ", "
     << (r.spec.rng == "generator" ? "one generator per cell" : "row-keyed") << ").\n";
  if (!r.spec.compat.empty() && r.spec.compat != "none")
    os << "Sampler conventions: " << r.spec.compat
       << (r.spec.compat == "k-diffusion"
               ? " (every run ends with the step to sigma = 0, one of its NFE; the reference is "
                 "the data)"
               : "")
       << ".\n";
  if (r.spec.guidance != 0.0)
    os << "Classifier-free guidance: w = " << r.spec.guidance << " (2 network calls per NFE).\n";
  if (!r.spec.classifier.empty())
    os << "Classifier guidance: " << r.spec.classifier << ", scale " << r.spec.classifier_scale
       << ", "
       << (r.spec.label == -1 ? "balanced classes" : "class " + std::to_string(r.spec.label))
       << (r.spec.unconditional ? ", from the model's null label" : "")
       << " (one classifier gradient per NFE, not counted in it).\n";
  os << "Features: " << r.feature_space << " (d = " << r.feature_dim
     << "). Reference: " << r.reference << ".\n";
  os << "FD: Frechet distance of Gaussians fitted in float64 (matrix square root by symmetric "
        "eigendecomposition). KID: unbiased cubic-kernel MMD^2 over "
     << r.spec.kid_subsets << " subsets of up to " << r.spec.kid_subset_size << " (mean +- SE).\n";
  os << "Floor: ";
  if (std::isnan(r.floor_fd))
    os << r.floor_note << ".\n";
  else
    os << "FD " << fmt(r.floor_fd) << ", KID " << fmt(r.floor_kid) << " +- " << fmt(r.floor_kid_se)
       << " (" << r.floor_note << "); differences below it are not resolved at this n.\n";
  return os.str();
}

std::string fid_markdown(const FidTableReport& r) {
  std::vector<int> nfes = r.spec.nfe;
  std::sort(nfes.begin(), nfes.end());
  nfes.erase(std::unique(nfes.begin(), nfes.end()), nfes.end());
  std::ostringstream os;
  auto table = [&](const char* title, auto value) {
    Table t;
    t.column("sampler", Table::Align::Left);
    for (int n : nfes) t.column("NFE " + std::to_string(n));
    for (const auto& name : r.spec.samplers) {
      std::vector<std::string> row = {name};
      for (int n : nfes) {
        std::string v;
        for (const auto& c : r.cells)
          if (c.sampler == name && c.target_nfe == n) v = c.failure.empty() ? value(c) : "-";
        row.push_back(v);
      }
      t.row(std::move(row));
    }
    os << title << "\n\n" << t.markdown();
  };
  table("Frechet distance (lower is better):", [](const FidCell& c) { return fmt(c.fd, 4); });
  bool any_kid = false;
  for (const auto& c : r.cells) any_kid |= !std::isnan(c.kid);
  if (any_kid) {
    os << "\n";
    table("KID (mean +- SE over subsets):",
          [](const FidCell& c) { return fmt(c.kid, 3) + " +- " + fmt(c.kid_se, 2); });
  }
  std::vector<std::string> notes;
  for (const auto& c : r.cells)
    if (!c.failure.empty()) notes.push_back(c.key() + ": " + c.failure);
  if (!notes.empty()) {
    os << "\nCells without a value:\n";
    for (const auto& n : notes) os << "- " << n << "\n";
  }
  return os.str();
}

std::string fid_report_json(const FidTableReport& r) {
  json j;
  j["spec"] = json::parse(fid_spec_json(r.spec));
  j["protocol"] = {{"grid", r.grid},
                   {"t_end", r.t_end},
                   {"n", r.spec.n},
                   {"seed", r.spec.seed},
                   {"features", r.feature_space},
                   {"feature_dim", r.feature_dim},
                   {"reference", r.reference},
                   {"reference_rows", r.reference_rows},
                   {"floor_fd", json_num(r.floor_fd)},
                   {"floor_kid", json_num(r.floor_kid)},
                   {"floor_kid_se", json_num(r.floor_kid_se)},
                   {"floor_note", r.floor_note}};
  j["cells"] = json::array();
  for (const auto& c : r.cells) j["cells"].push_back(cell_json(c, r.spec, r.reference));
  j["resumed"] = r.resumed;
  j["computed"] = r.computed;
  return j.dump(2);
}

void write_fid_tables(const FidTableReport& r, const std::string& out_dir) {
  using detail::csv_num;
  Table csv;
  for (const char* h : {"cell", "sampler", "target_nfe", "steps", "nfe", "fd", "kid", "kid_se",
                        "seconds", "n", "seed", "features", "reference", "failure"})
    csv.column(h);
  for (const auto& c : r.cells)
    csv.row({c.key(), c.sampler, std::to_string(c.target_nfe), std::to_string(c.steps),
             std::to_string(c.nfe), csv_num(c.fd), csv_num(c.kid), csv_num(c.kid_se),
             csv_num(c.seconds), std::to_string(r.spec.n), std::to_string(r.spec.seed),
             r.feature_space, r.reference, c.failure});
  detail::write_text_atomically((fs::path(out_dir) / "results.csv").string(), csv.csv());
  detail::write_text_atomically(
      (fs::path(out_dir) / "results.md").string(),
      "# NFE vs Frechet distance\n\n" + fid_protocol(r) + "\n" + fid_markdown(r) +
          "\nFiles: results.jsonl (one line per cell), results.csv, spec.json, "
          "reference_stats.npz and stats/CELL.npz (pytorch-fid layout: mu, sigma, plus n).\n");
}

}  // namespace sdekit
