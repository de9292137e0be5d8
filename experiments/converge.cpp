#include "experiments/converge.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "experiments/detail/common_fields.hpp"
#include "experiments/detail/report_util.hpp"
#include "experiments/detail/spec_fields.hpp"
#include "experiments/detail/study_runner.hpp"
#include "experiments/distributed.hpp"
#include "experiments/moments.hpp"
#include "experiments/npy_io.hpp"
#include "experiments/results_store.hpp"
#include "experiments/table.hpp"
#include "models/builtin.hpp"
#include "models/dtype.hpp"
#include "models/resources.hpp"
#include "networks/guidance_classifiers.hpp"
#include "networks/loader.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/brownian_tree.hpp"
#include "solvers/compat.hpp"
#include "solvers/noise.hpp"
#include "solvers/reference.hpp"
#include "solvers/registry.hpp"

namespace sdekit {

using detail::fmt;
using detail::json_num;
using detail::json_num_of;
using nlohmann::json;

namespace {

// The SDE discretizations of the default study. Any stochastic sampler whose every noise draw comes
// from the Brownian path gets a strong error (strong_capable); Langevin-type samplers (pc,
// annealed-langevin) add noise that is not a Brownian increment of the reverse SDE: they get weak
// errors only.
const std::vector<std::string> kStrongSamplers = {
    "euler-maruyama",         "ancestral", "sde-dpmpp-2m", "sra",          "euler-ancestral",
    "dpmpp-2s-ancestral",     "dpmpp-sde", "dpmpp-2m-sde", "dpmpp-3m-sde", "sa-solver",
    "er-sde:er-sde-noise=sde"};
// Deterministic limits of stochastic samplers, studied with the ODE samplers.
const std::vector<std::string> kOdeVariants = {"er-sde:er-sde-noise=ode", "sa-solver:sa-tau=0"};

// A strong error needs every noise draw to come from the shared Brownian path.
bool strong_capable(const std::string& name) {
  const auto s = make_sampler(name);
  return s->stochastic() && s->uses_brownian_path();
}

std::string fmt_tol(double tol) {
  std::ostringstream os;
  os << std::setprecision(3) << tol;
  return os.str();
}

// Resolves the defaults that depend on the registry or the SDE.
ConvergeSpec resolved(const ConvergeSpec& spec) {
  ConvergeSpec r = spec;
  if (r.samplers.empty()) r.samplers = default_converge_samplers();
  if (r.grid.empty()) {
    const SDEPtr sde = make_sde(r.sde);
    if (sde->schedule()) r.grid = grid_name(default_grid(*sde->schedule()));
  }
  return r;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

json cell_json(const ConvergeCell& c) {
  return json{{"cell", c.key()},
              {"sampler", c.sampler},
              {"kind", cell_kind_name(c.kind)},
              {"target_nfe", c.target_nfe},
              {"tol", c.tol},
              {"steps", c.steps},
              {"nfe", c.nfe},
              {"rms", json_num(c.rms)},
              {"max", json_num(c.max)},
              {"mean_err", json_num(c.mean_err)},
              {"cov_err", json_num(c.cov_err)},
              {"seconds", c.seconds},
              {"failure", c.failure}};
}

ConvergeCell cell_from_json(const json& j) {
  ConvergeCell c;
  c.sampler = j.at("sampler").get<std::string>();
  c.kind = parse_cell_kind(j.at("kind").get<std::string>());
  c.target_nfe = j.at("target_nfe").get<int>();
  c.tol = j.at("tol").get<double>();
  c.steps = j.at("steps").get<int>();
  c.nfe = j.at("nfe").get<int64_t>();
  c.rms = json_num_of(j, "rms");
  c.max = json_num_of(j, "max");
  c.mean_err = json_num_of(j, "mean_err");
  c.cov_err = json_num_of(j, "cov_err");
  c.seconds = j.at("seconds").get<double>();
  c.failure = j.value("failure", std::string());
  c.resumed = true;
  return c;
}

json reference_json(const ReferenceInfo& r) {
  return json{{"method", r.method},
              {"error_estimate", r.error_estimate},
              {"nfe", r.nfe},
              {"seconds", r.seconds}};
}

// Loads dir/name.npy and dir/name.json when both exist and the tensor has the expected shape.
bool load_reference(const ResultsStore& store, const std::string& name,
                    const std::vector<int64_t>& shape, at::Tensor& x, ReferenceInfo& info) {
  namespace fs = std::filesystem;
  const std::string npy = store.path(name + ".npy"), js = store.path(name + ".json");
  if (!fs::exists(npy) || !fs::exists(js)) return false;
  try {
    std::ifstream in(js);
    const json j = json::parse(in);
    at::Tensor t = read_npy(npy);
    if (t.sizes() != at::IntArrayRef(shape) || t.scalar_type() != at::kDouble) return false;
    if (!at::isfinite(t).all().item<bool>()) return false;  // damaged: recomputed below
    x = t;
    info.method = j.at("method").get<std::string>();
    info.error_estimate = j.at("error_estimate").get<double>();
    info.nfe = j.at("nfe").get<int64_t>();
    info.seconds = j.at("seconds").get<double>();
    info.cached = true;
    return true;
  } catch (const std::exception&) {
    return false;  // a damaged cache is recomputed
  }
}

void save_reference(const ResultsStore& store, const std::string& name, const at::Tensor& x,
                    const ReferenceInfo& info) {
  write_npy(store.path(name + ".npy"), x);
  detail::write_text_atomically(store.path(name + ".json"), reference_json(info).dump(2) + "\n");
}

std::vector<double> grid_times(const ConvergeSpec& spec, const NoiseSchedule& k, int steps,
                               double T, double t_end, const std::vector<int>& groups = {}) {
  GridOptions opt;
  opt.groups = groups;
  const GridChoice g = parse_grid_choice(spec.grid);
  opt.file = g.file;
  return make_time_grid(g.kind, k, steps, T, t_end, opt);
}

Compat spec_compat(const ConvergeSpec& spec) {
  return parse_compat(spec.compat.empty() ? "none" : spec.compat);
}

}  // namespace

std::string cell_kind_name(CellKind kind) {
  switch (kind) {
    case CellKind::Ode:
      return "ode";
    case CellKind::Sde:
      return "sde";
    case CellKind::Adaptive:
      return "adaptive";
  }
  return "?";
}

CellKind parse_cell_kind(std::string_view name) {
  for (CellKind k : {CellKind::Ode, CellKind::Sde, CellKind::Adaptive})
    if (cell_kind_name(k) == name) return k;
  throw std::invalid_argument("unknown cell kind '" + std::string(name) +
                              "'; valid: ode, sde, adaptive");
}

std::ostream& operator<<(std::ostream& os, CellKind kind) {
  return os << cell_kind_name(kind);
}

std::string ConvergeCell::key() const {
  return kind == CellKind::Adaptive ? sampler + "/tol=" + fmt_tol(tol)
                                    : sampler + "/nfe=" + std::to_string(target_nfe);
}

std::vector<std::string> default_converge_samplers() {
  std::vector<std::string> out;
  for (const auto& s : sampler_registry())
    if (!s.make(SamplerOptions{})->stochastic()) out.push_back(s.name);
  out.insert(out.end(), kOdeVariants.begin(), kOdeVariants.end());
  out.insert(out.end(), kStrongSamplers.begin(), kStrongSamplers.end());
  return out;
}

namespace {
detail::GuidanceFields guidance_fields(const ConvergeSpec& s) {
  return {s.classifier, s.classifier_scale, s.label, s.unconditional};
}
}  // namespace

void validate(const ConvergeSpec& spec) {
  const SDEPtr sde = detail::check_common_fields(spec.sde, spec.samplers, spec.nfe, spec.dtype,
                                                 spec.t_end, spec.grid);
  const LoadedModel lm = detail::with_field("model", [&] {
    return load_model(
        spec.model, sde->schedule(),
        detail::study_model_options(spec.param, spec.event_shape, 0.0, guidance_fields(spec)));
  });
  if (!spec.compat.empty()) detail::with_field("compat", [&] { return spec_compat(spec); });
  // Below about 1e-14 a double-precision error estimate cannot meet the tolerance and the
  // adaptive solvers would shrink their steps without end.
  for (double v : spec.tolerances)
    if (!(v >= 1e-14 && v < 1.0))
      throw std::invalid_argument(
          "field 'tolerances': every tolerance must lie in [1e-14, 1), got " + fmt(v));
  if (spec.n < 2)
    throw std::invalid_argument("field 'n': the batch needs >= 2 rows, got " +
                                std::to_string(spec.n));
  int64_t D = 1;
  for (int64_t v : lm.event_shape) D *= v;
  // x_T, the references and a sampler's buffers: a few dozen float64 copies of the batch.
  require_memory("field 'n' (" + std::to_string(spec.n) + ")", 64.0 * 8.0 * double(spec.n) * D);
  if (!(spec.ref_tol >= 1e-14 && spec.ref_tol < 1e-3))
    throw std::invalid_argument("field 'ref_tol': must lie in [1e-14, 1e-3), got " +
                                fmt(spec.ref_tol));
  if (spec.sde_ref_steps < 2 || spec.sde_ref_steps > detail::kMaxNfe)
    throw std::invalid_argument("field 'sde_ref_steps': must lie in [2, " +
                                std::to_string(detail::kMaxNfe) + "], got " +
                                std::to_string(spec.sde_ref_steps));
}

const SpecSchema<ConvergeSpec>& converge_spec_schema() {
  using S = ConvergeSpec;
  auto t_end_flag = [](const S& s) {
    if (s.t_end == -1.0)
      throw std::invalid_argument("--t-end must lie inside the SDE's time domain, got -1");
  };
  static const SpecSchema<S> schema = {
      {"model", &S::model, model_spec_help()},
      {"sde", &S::sde, "SDE / schedule"},
      {"samplers", &S::samplers,
       "Samplers, comma separated (default: every deterministic sampler, plus euler-maruyama, "
       "ancestral, sde-dpmpp-2m, sra for strong errors)"},
      {"nfe", &S::nfe, "NFE list, comma separated", false, true,
       [](S& s, const std::string& text) { s.nfe = parse_nfe_list(text); }},
      {"tolerances", &S::tolerances, "Adaptive samplers: rtol = atol list", false, true,
       [](S& s, const std::string& text) {
         s.tolerances = parse_number_list(text, "--tolerances");
       }},
      {"n", &S::n, "Batch size (rows of x_T)"},
      {"seed", &S::seed, "Seed of x_T and the Brownian path"},
      {"dtype", &S::dtype, "float32 | float64"},
      {"t_end", &S::t_end, "End time in (0, T) (default: the SDE's)", false, false, {}, t_end_flag},
      {"grid", &S::grid, "Time grid"},
      {"ref_tol", &S::ref_tol, "Reference ODE solve: rtol = atol"},
      {"sde_ref_steps", &S::sde_ref_steps,
       "Reference SDE solve: SRA steps on the same Brownian path"},
      {"param", &S::param, "torchscript models: eps | x0 | v | score | denoiser | flow", true},
      {"event_shape", &S::event_shape, "torchscript models: one sample's shape, e.g. 2 or 1,28,28",
       true},
      {"compat", &S::compat,
       "Sampler conventions of a reference implementation: none | k-diffusion | dpm-solver (its "
       "options; no step to sigma = 0 in a study)",
       true},
      {"classifier", &S::classifier, "Classifier guidance: " + classifier_spec_help(), true},
      {"classifier_scale", &S::classifier_scale, "Classifier guidance: scale s", true},
      {"class", &S::label,
       "Class of classifier guidance and of class-conditional models (-1: balanced classes)", true},
      {"unconditional", &S::unconditional,
       "Classifier guidance: 1 runs a class-conditional model from its null label", true},
  };
  return schema;
}

std::string converge_spec_json(const ConvergeSpec& spec) {
  return detail::write_spec(converge_spec_schema(), resolved(spec)).dump();
}

ConvergeSpec converge_spec_from_json(const std::string& text, const std::string& source) {
  return detail::spec_from_json(converge_spec_schema(), text, source);
}

ConvergeReport run_converge(const ConvergeSpec& spec_in, const std::string& out_dir, bool fresh,
                            const std::function<void(const ConvergeProgress&)>& progress) {
  validate(spec_in);
  const ConvergeSpec spec = resolved(spec_in);
  validate(spec);
  const auto t_start = std::chrono::steady_clock::now();

  ConvergeReport rep;
  rep.spec = spec;
  rep.grid = spec.grid;
  const SDEPtr sde = make_sde(spec.sde);
  const SchedulePtr kernel = sde->schedule();
  const LoadedModel lm = load_model(
      spec.model, kernel,
      detail::study_model_options(spec.param, spec.event_shape, 0.0, guidance_fields(spec)));
  ScoreModel& model = *lm.model;
  const GaussianMixture* mixture = lm.mixture ? &*lm.mixture : nullptr;
  rep.T = sde->domain().hi;
  rep.t_end = spec.t_end < 0 ? sde->default_t_end() : spec.t_end;
  rep.dim = 1;
  for (int64_t v : lm.event_shape) rep.dim *= v;
  const double T = rep.T, t_end = rep.t_end;
  const at::ScalarType dtype = parse_dtype(spec.dtype);

  // The plan: every cell in order, the skipped NFEs noted per sampler.
  std::map<std::string, std::string> notes;
  for (const auto& name : spec.samplers) {
    const auto probe = make_sampler(name);
    if (probe->adaptive()) {
      for (double tol : spec.tolerances) {
        ConvergeCell c;
        c.sampler = name;
        c.kind = CellKind::Adaptive;
        c.tol = tol;
        rep.cells.push_back(c);
      }
      continue;
    }
    std::vector<int> nfes = spec.nfe;
    std::sort(nfes.begin(), nfes.end());
    nfes.erase(std::unique(nfes.begin(), nfes.end()), nfes.end());
    std::vector<int> skipped;
    for (int nfe : nfes) {
      if (nfe < probe->nfe_per_step()) {
        skipped.push_back(nfe);
        continue;
      }
      SamplerOptions o = compat_options(spec_compat(spec), name);
      o.nfe_budget = nfe;
      ConvergeCell c;
      c.sampler = name;
      c.kind = probe->stochastic() ? CellKind::Sde : CellKind::Ode;
      c.target_nfe = nfe;
      c.steps = make_sampler(name, o)->steps_for_nfe(nfe);
      rep.cells.push_back(c);
    }
    if (!skipped.empty()) {
      std::string s;
      for (int v : skipped) s += (s.empty() ? "" : ", ") + std::to_string(v);
      notes[name] =
          "NFE " + s + " buy no step (" + std::to_string(probe->nfe_per_step()) + " NFE per step)";
    }
    if (probe->stochastic() && !strong_capable(name))
      notes[name] += std::string(notes[name].empty() ? "" : "; ") +
                     "no strong error (its noise is not the reverse SDE's Brownian increment)";
  }

  std::vector<std::string> derived = {"reference.npy",
                                      "reference.json",
                                      "sde_reference.npy",
                                      "sde_reference.json",
                                      "sde_reference_full.npy",
                                      "sde_reference_full.json",
                                      "results.csv",
                                      "results.md"};
  detail::CellOps<ConvergeCell> ops;
  ops.read = cell_from_json;
  ops.write = cell_json;
  // Cost model for the ETA: NFE (adaptive cells: a rough guess growing with -log10 tol).
  ops.cost = [](const ConvergeCell& c) {
    return c.kind == CellKind::Adaptive ? 20.0 * (1.0 - std::log10(c.tol)) : double(c.target_nfe);
  };
  detail::StudyRunner<ConvergeCell> runner(out_dir, converge_spec_json(spec), fresh, derived,
                                           rep.cells, ops, progress, t_start);
  // Over several processes rank 0 alone holds the results folder (docs/theory.md section 10): a
  // stored reference goes from it to the others; one that is not stored is computed on every
  // rank (the same arithmetic, so the same bits) and saved by rank 0.
  const ResultsStore* store = dist::writer() ? &runner.store() : nullptr;

  bool need_ode = false, need_sde = false;
  for (const auto& c : rep.cells) {
    need_ode |= c.kind != CellKind::Sde;
    need_sde |= c.kind == CellKind::Sde && strong_capable(c.sampler);
  }

  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(spec.seed);
  std::vector<int64_t> shape = {spec.n};
  shape.insert(shape.end(), lm.event_shape.begin(), lm.event_shape.end());
  const at::Tensor xT = draw_prior(*sde, shape, gen, at::kDouble);
  const auto load_shared = [&](const std::string& name, at::Tensor& x, ReferenceInfo& info) {
    bool have = store && load_reference(*store, name, shape, x, info);
    if (!dist::active()) return have;
    have = dist::broadcast_text(have ? "1" : "0", "the stored " + name) == "1";
    if (have) {
      if (!store) x = at::empty(shape, at::kDouble);
      dist::broadcast_tensor(x, "the stored " + name);
    }
    return have;
  };
  const double a_end = kernel->alpha(t_end), s_end = kernel->sigma(t_end);
  // Weak errors need the exact moments: analytic models only.
  at::Tensor m_exact, C_exact;
  if (mixture) {
    m_exact = mixture->mean(a_end);
    C_exact = mixture->covariance(a_end, s_end);
    at::Generator g2 = at::make_generator<at::CPUGeneratorImpl>(spec.seed ^ 0x5eedf100dULL);
    const MomentErrors floor =
        moment_errors(mixture->sample(spec.n, a_end, s_end, g2), m_exact, C_exact);
    rep.floor_mean_err = floor.mean_err;
    rep.floor_cov_err = floor.cov_err;
  } else {
    rep.floor_mean_err = rep.floor_cov_err = std::numeric_limits<double>::quiet_NaN();
  }

  at::Tensor x_ode;
  if (need_ode && !load_shared("reference", x_ode, rep.ode_reference)) {
    runner.announce("ODE reference");
    const auto t0 = std::chrono::steady_clock::now();
    if (mixture && mixture->components() == 1) {
      x_ode = mixture->gaussian_flow(xT, *kernel, T, t_end);
      rep.ode_reference.method = "closed form (single Gaussian)";
      rep.ode_reference.error_estimate = 0.0;
    } else {
      const ReferenceSolution ref =
          reference_solve(model, *sde, xT, T, t_end, spec.ref_tol, spec.ref_tol);
      x_ode = ref.x;
      rep.ode_reference.method = "dopri5 rtol=atol=" + fmt_tol(spec.ref_tol);
      rep.ode_reference.error_estimate = ref.error_estimate;
      rep.ode_reference.nfe = ref.stats.nfe + ref.check_stats.nfe;
    }
    rep.ode_reference.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (store) save_reference(*store, "reference", x_ode, rep.ode_reference);
  }

  // One Brownian path for every stochastic cell; its resolution is below the finest step of the
  // reference grid, so each grid point of every run has its own leaf.
  BrownianPtr path;
  at::Tensor x_sde;
  if (need_sde) {
    const std::vector<double> fine = grid_times(spec, *kernel, spec.sde_ref_steps, T, t_end);
    double h_min = T - t_end;
    for (std::size_t i = 0; i + 1 < fine.size(); ++i)
      h_min = std::min(h_min, std::abs(fine[i] - fine[i + 1]));
    const double tol = std::max(h_min / 4.0, (T - t_end) * std::ldexp(1.0, -40));
    path = std::make_shared<VirtualBrownianTree>(t_end, T, spec.seed, tol);
    if (!load_shared("sde_reference", x_sde, rep.sde_reference)) {
      runner.announce("SDE reference");
      const auto t0 = std::chrono::steady_clock::now();
      const auto sra = make_sampler("sra");
      SampleRequest r;
      r.model = &model;
      r.sde = sde.get();
      r.x_init = xT;
      r.brownian = path;
      // The fine solve is stored as soon as it exists, so an interrupt during the half-step
      // solve that estimates its error does not lose it.
      ReferenceInfo full_info;
      at::Tensor x_full;
      if (!(store && load_reference(*store, "sde_reference_full", shape, x_full, full_info))) {
        r.times = fine;
        const SampleResult full = sra->run(r);
        x_full = full.x;
        full_info.method = "sra " + std::to_string(spec.sde_ref_steps) + " steps";
        full_info.nfe = full.nfe;
        full_info.seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (store) save_reference(*store, "sde_reference_full", x_full, full_info);
      }
      const auto t1 = std::chrono::steady_clock::now();
      r.times = grid_times(spec, *kernel, spec.sde_ref_steps / 2, T, t_end);
      const SampleResult half = sra->run(r);
      x_sde = x_full;
      rep.sde_reference.method =
          "sra " + std::to_string(spec.sde_ref_steps) + " steps on the same Brownian path";
      rep.sde_reference.error_estimate = (x_full - half.x).abs().max().item<double>();
      rep.sde_reference.nfe = full_info.nfe + half.nfe;
      rep.sde_reference.seconds =
          full_info.seconds +
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
      if (store) save_reference(*store, "sde_reference", x_sde, rep.sde_reference);
    }
  }

  const at::Tensor x_init = xT.to(dtype);
  runner.run(
      [&](ConvergeCell& c) {
        const std::string key = c.key();
        SamplerOptions o = compat_options(spec_compat(spec), c.sampler);
        if (c.kind == CellKind::Adaptive) {
          o.rtol = o.atol = c.tol;
        } else {
          o.nfe_budget = c.target_nfe;
        }
        const auto sampler = make_sampler(c.sampler, o);
        SampleRequest r;
        r.model = &model;
        r.sde = sde.get();
        r.x_init = x_init;
        r.times = c.kind == CellKind::Adaptive
                      ? std::vector<double>{T, t_end}
                      : grid_times(spec, *kernel, c.steps, T, t_end, sampler->grid_groups(c.steps));
        const bool strong = c.kind == CellKind::Sde && strong_capable(c.sampler);
        if (strong) {
          r.brownian = path;
        } else if (c.kind == CellKind::Sde) {
          r.generator = at::make_generator<at::CPUGeneratorImpl>(spec.seed ^ fnv1a(key));
        }
        const auto t0 = std::chrono::steady_clock::now();
        try {
          const SampleResult res = sampler->run(r);
          c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          c.nfe = res.nfe;
          c.steps = res.steps;
          const at::Tensor x = res.x.to(at::kDouble);
          if (c.kind != CellKind::Sde || strong) {
            const at::Tensor diff = x - (c.kind == CellKind::Sde ? x_sde : x_ode);
            c.rms = diff.pow(2).mean().sqrt().item<double>();
            c.max = diff.abs().max().item<double>();
          }
          if (mixture) {
            const MomentErrors e = moment_errors(x.reshape({x.size(0), -1}), m_exact, C_exact);
            c.mean_err = e.mean_err;
            c.cov_err = e.cov_err;
          } else {
            c.mean_err = c.cov_err = std::numeric_limits<double>::quiet_NaN();
          }
        } catch (const NonFiniteError& e) {
          c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          c.failure = e.what();
          c.mean_err = c.cov_err = std::numeric_limits<double>::quiet_NaN();
        }
      },
      detail::Share::Cells);
  rep.resumed = runner.resumed();
  rep.computed = runner.computed();

  for (const auto& name : spec.samplers) {
    SamplerSummary s;
    s.sampler = name;
    const auto probe = make_sampler(name);
    s.declared_order = probe->order();
    s.kind = probe->adaptive()     ? CellKind::Adaptive
             : probe->stochastic() ? CellKind::Sde
                                   : CellKind::Ode;
    s.note = notes[name];
    s.floor = s.kind == CellKind::Sde ? rep.sde_reference.error_estimate
                                      : rep.ode_reference.error_estimate;
    std::vector<std::pair<double, double>> pts;
    for (const auto& c : rep.cells)
      if (c.sampler == name && std::isfinite(c.rms) && c.rms > 0 && c.nfe > 0)
        pts.emplace_back(static_cast<double>(c.nfe), c.rms);
    std::sort(pts.begin(), pts.end());
    // Budgets that buy the same run (e.g. lms's Runge-Kutta start at 8 and 10 NFE) count once.
    pts.erase(std::unique(pts.begin(), pts.end(),
                          [](const auto& a, const auto& b) { return a.first == b.first; }),
              pts.end());
    for (const auto& [n, e] : pts) {
      s.nfe.push_back(n);
      s.rms.push_back(e);
    }
    if (pts.size() >= 2) {
      try {
        s.fit = fit_order_auto(s.nfe, s.rms, s.floor);
        s.fitted = true;
      } catch (const std::invalid_argument& e) {
        s.note += std::string(s.note.empty() ? "" : "; ") + e.what();
      }
    }
    rep.summaries.push_back(s);
  }
  return rep;
}

namespace {

json summary_json(const SamplerSummary& s) {
  json j{{"sampler", s.sampler},
         {"kind", cell_kind_name(s.kind)},
         {"declared_order", s.declared_order},
         {"fitted", s.fitted},
         {"note", s.note}};
  if (s.fitted) {
    j["order"] = s.fit.order;
    j["std_error"] = s.fit.std_error;
    j["range_nfe"] = {s.nfe[s.fit.first], s.nfe[s.fit.last]};
    j["points"] = s.fit.points();
  }
  return j;
}

std::string protocol_text(const ConvergeReport& r) {
  std::ostringstream os;
  os << "Model " << r.spec.model << " (D = " << r.dim << "), SDE " << r.spec.sde << ", grid "
     << r.grid << ", t: " << r.T << " -> " << r.t_end << ", batch n = " << r.spec.n << ", seed "
     << r.spec.seed << ", " << r.spec.dtype << ".\n";
  auto ref = [&](const char* what, const ReferenceInfo& i) {
    if (i.method.empty()) return;
    os << what << ": " << i.method << "; error estimate " << fmt(i.error_estimate) << " (max norm)";
    if (i.nfe > 0) os << ", NFE " << i.nfe;
    os << ", " << fmt(i.seconds) << " s" << (i.cached ? ", reused from the output folder" : "")
       << ".\n";
  };
  ref("ODE reference", r.ode_reference);
  ref("SDE reference (strong errors)", r.sde_reference);
  os << "Errors: RMS over rows and coordinates of x - x_ref; orders fitted by least squares on "
        "log RMS vs log NFE over the automatically chosen range.\n";
  return os.str();
}

}  // namespace

namespace {
using Align = Table::Align;

/// A table with one row per sampler of `kind` (or every kind but it, when `exclude`) and one
/// column per key; `value` gives a cell's text ("" where the sampler has no such cell).
template <class Key, class KeyName, class Match, class Value>
Table sampler_by_key(const ConvergeReport& r, CellKind kind, bool exclude,
                     const std::vector<Key>& keys, KeyName key_name, Match match, Value value) {
  Table t;
  t.column("sampler", Align::Left);
  for (const Key& k : keys) t.column(key_name(k));
  for (const auto& s : r.summaries) {
    if ((s.kind == kind) == exclude) continue;
    std::vector<std::string> row = {s.sampler};
    for (const Key& k : keys) {
      std::string v;
      for (const auto& c : r.cells)
        if (c.sampler == s.sampler && match(c, k)) v = c.failure.empty() ? value(c) : "fail";
      row.push_back(v);
    }
    t.row(std::move(row));
  }
  return t;
}

}  // namespace

std::string converge_markdown(const ConvergeReport& r) {
  std::ostringstream os;
  // Fixed-step samplers: errors by NFE asked for.
  std::vector<int> nfes = r.spec.nfe;
  std::sort(nfes.begin(), nfes.end());
  nfes.erase(std::unique(nfes.begin(), nfes.end()), nfes.end());
  auto nfe_name = [](int n) { return std::to_string(n); };
  auto at_nfe = [](const ConvergeCell& c, int n) { return c.target_nfe == n; };
  os << "RMS error by NFE (stochastic samplers: strong error on the same Brownian path):\n\n";
  os << sampler_by_key(r, CellKind::Adaptive, true, nfes, nfe_name, at_nfe,
                       [](const ConvergeCell& c) { return fmt(c.rms); })
            .markdown();
  bool any_adaptive = false;
  for (const auto& s : r.summaries) any_adaptive |= s.kind == CellKind::Adaptive;
  if (any_adaptive) {
    os << "\nAdaptive samplers (rtol = atol = tol): NFE spent / RMS error:\n\n";
    os << sampler_by_key(
              r, CellKind::Adaptive, false, r.spec.tolerances, fmt_tol,
              [](const ConvergeCell& c, double t) { return c.tol == t; },
              [](const ConvergeCell& c) { return std::to_string(c.nfe) + " / " + fmt(c.rms, 2); })
              .markdown();
  }
  os << "\nEmpirical orders (slope of log RMS error against log NFE):\n\n";
  Table orders;
  orders.column("sampler", Align::Left).column("kind", Align::Left).column("declared");
  orders.column("fitted").column("std err").column("NFE range").column("points");
  orders.column("note", Align::Left);
  for (const auto& s : r.summaries) {
    std::vector<std::string> row = {s.sampler, cell_kind_name(s.kind), fmt(s.declared_order)};
    if (s.fitted) {
      std::ostringstream range;
      range << s.nfe[s.fit.first] << "-" << s.nfe[s.fit.last];
      row.insert(row.end(), {fmt(s.fit.order), fmt(s.fit.std_error, 2), range.str(),
                             std::to_string(s.fit.points())});
    } else {
      row.insert(row.end(), {"-", "-", "-", "-"});
    }
    row.push_back(s.note);
    orders.row(std::move(row));
  }
  os << orders.markdown();
  // Weak errors of the stochastic samplers.
  bool any_sde = false;
  for (const auto& s : r.summaries) any_sde |= s.kind == CellKind::Sde;
  if (any_sde) {
    os << "\nWeak errors of the stochastic samplers, mean error ||m - m_exact|| / relative "
          "covariance error, by NFE; floor (n exact samples): "
       << fmt(r.floor_mean_err) << " / " << fmt(r.floor_cov_err) << ":\n\n";
    os << sampler_by_key(
              r, CellKind::Sde, false, nfes, nfe_name, at_nfe,
              [](const ConvergeCell& c) { return fmt(c.mean_err, 2) + " / " + fmt(c.cov_err, 2); })
              .markdown();
  }
  return os.str();
}

void write_converge_tables(const ConvergeReport& r, const std::string& out_dir) {
  namespace fs = std::filesystem;
  using detail::csv_num;
  Table csv;
  for (const char* h : {"cell", "sampler", "kind", "target_nfe", "tol", "steps", "nfe", "rms",
                        "max", "mean_err", "cov_err", "seconds", "failure"})
    csv.column(h);
  for (const auto& c : r.cells)
    csv.row({c.key(), c.sampler, cell_kind_name(c.kind), std::to_string(c.target_nfe),
             c.kind == CellKind::Adaptive ? csv_num(c.tol) : "", std::to_string(c.steps),
             std::to_string(c.nfe), csv_num(c.rms), csv_num(c.max), csv_num(c.mean_err),
             csv_num(c.cov_err), csv_num(c.seconds), c.failure});
  detail::write_text_atomically((fs::path(out_dir) / "results.csv").string(), csv.csv());
  std::ostringstream md;
  md << "# Convergence study\n\n" << protocol_text(r) << "\n" << converge_markdown(r);
  md << "\nFiles: results.jsonl (one line per cell), results.csv, spec.json, error_vs_nfe.png, "
        "strong_error_vs_nfe.png.\n";
  detail::write_text_atomically((fs::path(out_dir) / "results.md").string(), md.str());
}

std::string converge_report_json(const ConvergeReport& r) {
  json j;
  j["spec"] = json::parse(converge_spec_json(r.spec));
  j["grid"] = r.grid;
  j["T"] = r.T;
  j["t_end"] = r.t_end;
  j["dim"] = r.dim;
  if (!r.ode_reference.method.empty()) j["ode_reference"] = reference_json(r.ode_reference);
  if (!r.sde_reference.method.empty()) j["sde_reference"] = reference_json(r.sde_reference);
  j["weak_floor"] = {{"mean_err", r.floor_mean_err}, {"cov_err", r.floor_cov_err}};
  j["cells"] = json::array();
  for (const auto& c : r.cells) j["cells"].push_back(cell_json(c));
  j["orders"] = json::array();
  for (const auto& s : r.summaries) j["orders"].push_back(summary_json(s));
  j["resumed"] = r.resumed;
  j["computed"] = r.computed;
  return j.dump(2);
}

std::string converge_protocol(const ConvergeReport& r) {
  return protocol_text(r);
}

}  // namespace sdekit
