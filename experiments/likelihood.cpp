#include "experiments/likelihood.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "datasets/idx.hpp"
#include "experiments/detail/common_fields.hpp"
#include "experiments/detail/report_util.hpp"
#include "experiments/detail/spec_fields.hpp"
#include "experiments/detail/study_runner.hpp"
#include "experiments/npy_io.hpp"
#include "experiments/order_fit.hpp"
#include "experiments/table.hpp"
#include "models/dtype.hpp"
#include "models/likelihood_flow.hpp"
#include "models/resources.hpp"
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

constexpr double kLn2 = 0.69314718055994530942;

bool is_adaptive(const std::string& sampler) {
  return make_sampler(sampler)->adaptive();
}

// The model of the spec; class-conditional models run with the null label unless `class` names
// a class.
LoadedModel likelihood_model(const LikelihoodSpec& spec, const SchedulePtr& kernel) {
  ModelOptions o = detail::study_model_options(spec.param, spec.event_shape);
  LoadedModel lm = load_model(spec.model, kernel, o);
  if (lm.num_classes == 0) {
    if (spec.label != -1)
      throw std::invalid_argument("field 'class': model '" + spec.model +
                                  "' is not class-conditional");
    return lm;
  }
  if (spec.label < -1 || spec.label >= lm.num_classes)
    throw std::invalid_argument("field 'class': -1 (the null label, p(x)) or a class in [0, " +
                                std::to_string(lm.num_classes - 1) + "], got " +
                                std::to_string(spec.label));
  o.label = spec.label == -1 ? lm.num_classes : spec.label;
  return load_model(spec.model, kernel, o);
}

int64_t dim_of(const LoadedModel& lm) {
  int64_t D = 1;
  for (int64_t v : lm.event_shape) D *= v;
  return D;
}

bool use_exact(const LikelihoodSpec& spec, int64_t D) {
  return spec.divergence == "exact" || (spec.divergence == "auto" && D <= 64);
}

// The data rows [n, ...event] at t_end and the bits-per-dimension offset.
at::Tensor likelihood_data(const LikelihoodSpec& spec, const LoadedModel& lm,
                           const NoiseSchedule& k, double t_end, std::string& what,
                           double& offset) {
  const int64_t D = dim_of(lm);
  std::vector<int64_t> shape = {spec.n};
  shape.insert(shape.end(), lm.event_shape.begin(), lm.event_shape.end());
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(spec.seed);
  offset = 0.0;
  if (spec.data == "mixture") {
    what = std::to_string(spec.n) + " exact samples of p(t_end) of " + spec.model + " (seed " +
           std::to_string(spec.seed) + ")";
    return lm.mixture->sample(spec.n, k.alpha(t_end), k.sigma(t_end), g).reshape(shape);
  }
  if (spec.data == "fashion-mnist") {
    const ImageDataset test = load_fashion_mnist("test");
    if (spec.n > test.images.size(0))
      throw std::invalid_argument("field 'n': the test set has " +
                                  std::to_string(test.images.size(0)) + " images, got " +
                                  std::to_string(spec.n));
    const at::Tensor bytes =
        test.images.narrow(0, 0, spec.n).to(at::kDouble).add(1.0).mul(127.5).round();
    const at::Tensor u = at::rand(bytes.sizes(), g, at::kDouble);
    what = "the first " + std::to_string(spec.n) +
           " Fashion-MNIST test images, dequantized: x = (byte + u) / 128 - 1, u ~ U[0, 1) "
           "(seed " +
           std::to_string(spec.seed) + ")";
    offset = 7.0;
    return bytes.add(u).div(128.0).sub(1.0).reshape(shape);
  }
  const std::string path = spec.data.substr(4);
  at::Tensor x = read_npy(path);
  if (x.dim() < 1 || x.size(0) < spec.n || x[0].numel() != D)
    throw std::invalid_argument("field 'data': '" + path + "' must hold at least " +
                                std::to_string(spec.n) + " rows of " + std::to_string(D) +
                                " values for model " + spec.model + ", got shape " +
                                detail::shape_text(x.sizes()));
  require_finite(x, "field 'data': '" + path + "'");
  what = "the first " + std::to_string(spec.n) + " rows of " + path;
  return x.narrow(0, 0, spec.n).to(at::kDouble).reshape(shape);
}

std::string tol_text(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

}  // namespace

std::string LikelihoodCell::key() const {
  return target_nfe > 0 ? "nfe=" + std::to_string(target_nfe) : "tol=" + tol_text(tolerance);
}

void validate(const LikelihoodSpec& spec) {
  const SDEPtr sde = detail::with_field("sde", [&] { return make_sde(spec.sde); });
  const SchedulePtr k = sde->schedule();
  if (!k)
    throw std::invalid_argument("field 'sde': '" + spec.sde +
                                "' has no Gaussian kernel; the likelihood needs an affine SDE");
  if (spec.method != "ode")
    throw std::invalid_argument("field 'method': '" + spec.method + "'; valid: ode");
  const auto sampler = detail::with_field("sampler", [&] { return make_sampler(spec.sampler); });
  if (sampler->stochastic() || sampler->consistency())
    throw std::invalid_argument("field 'sampler': '" + spec.sampler +
                                "' is not a deterministic ODE solver");
  if (sampler->adaptive()) {
    if (spec.tolerances.empty())
      throw std::invalid_argument("field 'tolerances': the list is empty");
    for (double t : spec.tolerances)
      if (!(t > 0) || !std::isfinite(t))
        throw std::invalid_argument("field 'tolerances': values must be finite and > 0");
  } else {
    if (spec.nfe.empty()) throw std::invalid_argument("field 'nfe': the list is empty");
    for (int v : spec.nfe)
      if (v < sampler->nfe_per_step() || v > detail::kMaxNfe)
        throw std::invalid_argument("field 'nfe': " + std::to_string(v) + " buys no step of " +
                                    spec.sampler + " (" + std::to_string(sampler->nfe_per_step()) +
                                    " NFE per step)");
    if (!spec.grid.empty()) detail::with_field("grid", [&] { return parse_grid(spec.grid); });
  }
  detail::with_field("dtype", [&] { return parse_dtype(spec.dtype); });
  if (spec.n < 1)
    throw std::invalid_argument("field 'n': needs >= 1 rows, got " + std::to_string(spec.n));
  if (spec.divergence != "auto" && spec.divergence != "exact" && spec.divergence != "hutchinson")
    throw std::invalid_argument("field 'divergence': '" + spec.divergence +
                                "'; valid: auto, exact, hutchinson");
  if (spec.probes < 1)
    throw std::invalid_argument("field 'probes': must be >= 1, got " + std::to_string(spec.probes));
  if (spec.probe != "rademacher" && spec.probe != "gaussian")
    throw std::invalid_argument("field 'probe': '" + spec.probe + "'; valid: rademacher, gaussian");
  if (spec.prior != "gaussian" && spec.prior != "exact")
    throw std::invalid_argument("field 'prior': '" + spec.prior + "'; valid: gaussian, exact");
  const Interval d = sde->domain();
  if (spec.t_end != -1.0 && !(spec.t_end > d.lo && spec.t_end < d.hi))
    throw std::invalid_argument("field 't_end': must lie in the SDE's time domain");
  const LoadedModel lm = detail::with_field("model", [&] { return likelihood_model(spec, k); });
  if (spec.data != "mixture" && spec.data != "fashion-mnist" && spec.data.rfind("npy:", 0) != 0)
    throw std::invalid_argument("field 'data': '" + spec.data +
                                "'; valid: mixture, fashion-mnist, npy:FILE.npy");
  if (spec.data == "mixture" && !lm.mixture)
    throw std::invalid_argument("field 'data': 'mixture' needs an exact mixture model; '" +
                                spec.model + "' is not one");
  if (spec.data == "fashion-mnist" && lm.event_shape != std::vector<int64_t>{1, 28, 28})
    throw std::invalid_argument("field 'data': Fashion-MNIST images are 1x28x28; model '" +
                                spec.model + "' takes other samples");
  if (spec.data.rfind("npy:", 0) == 0 && !fs::exists(spec.data.substr(4)))
    throw std::invalid_argument("field 'data': file '" + spec.data.substr(4) + "' does not exist");
  if (spec.prior == "exact" && !lm.mixture)
    throw std::invalid_argument(
        "field 'prior': 'exact' is the noised density p_T of an exact "
        "mixture; model '" +
        spec.model + "' has none (use gaussian)");
  const int64_t D = dim_of(lm);
  // The state, the model's activations for the divergence's backward passes.
  require_memory("field 'n' (" + std::to_string(spec.n) + ")", 64.0 * 8.0 * double(spec.n) * D);
  // A model that cannot give gradients fails here, before any work.
  std::vector<int64_t> shape = {1};
  shape.insert(shape.end(), lm.event_shape.begin(), lm.event_shape.end());
  detail::with_field("model", [&] {
    return lm.model->predict_grad(at::zeros(shape, at::kDouble),
                                  at::full({1}, sde->default_t_end(), at::kDouble));
  });
}

const SpecSchema<LikelihoodSpec>& likelihood_spec_schema() {
  using S = LikelihoodSpec;
  static const SpecSchema<S> schema = {
      {"model", &S::model, model_spec_help()},
      {"sde", &S::sde, "SDE / schedule (affine)"},
      {"data", &S::data,
       "mixture (exact samples of p(t_end)) | fashion-mnist (test set) | "
       "npy:FILE.npy"},
      {"n", &S::n, "Rows"},
      {"seed", &S::seed, "Seed of the data draw (mixture samples, dequantization) and probes"},
      {"method", &S::method, "ode (the probability-flow ODE)"},
      {"divergence", &S::divergence, "auto (exact for D <= 64) | exact | hutchinson"},
      {"probes", &S::probes, "Hutchinson: probes per row (fixed along the trajectory)"},
      {"probe", &S::probe, "Hutchinson: rademacher | gaussian"},
      {"sampler", &S::sampler, "Deterministic ODE sampler (adaptive: tolerances; else NFE)"},
      {"tolerances", &S::tolerances, "Adaptive samplers: rtol = atol list (cells)"},
      {"nfe", &S::nfe, "Fixed-step samplers: NFE list (cells)", false, true,
       [](S& s, const std::string& text) { s.nfe = parse_nfe_list(text); }},
      {"grid", &S::grid, "Fixed-step samplers: time grid (default: the schedule's)"},
      {"prior", &S::prior, "gaussian (N(0, prior_std^2 I)) | exact (an exact mixture's p_T)"},
      {"dtype", &S::dtype, "float64 | float32"},
      {"t_end",
       &S::t_end,
       "Time of the data (default: the SDE's end time)",
       false,
       false,
       {},
       [](const S& s) {
         if (s.t_end == -1.0)
           throw std::invalid_argument("--t-end must lie inside the SDE's time domain, got -1");
       }},
      {"class", &S::label, "Class-conditional models: -1 the null label (p(x)), or k (p(x | k))"},
      {"param", &S::param, "torchscript models: eps | x0 | v | score | denoiser", true},
      {"event_shape", &S::event_shape, "torchscript models: one sample's shape, e.g. 2 or 1,28,28",
       true},
  };
  return schema;
}

std::string likelihood_spec_json(const LikelihoodSpec& spec) {
  return detail::write_spec(likelihood_spec_schema(), spec).dump();
}

LikelihoodSpec likelihood_spec_from_json(const std::string& text, const std::string& source) {
  return detail::spec_from_json(likelihood_spec_schema(), text, source);
}

namespace {

nlohmann::json cell_json(const LikelihoodCell& c) {
  return {{"cell", c.key()},
          {"tolerance", c.tolerance},
          {"target_nfe", c.target_nfe},
          {"nfe", c.nfe},
          {"seconds", c.seconds},
          {"mean_nll", json_num(c.mean_nll)},
          {"se_nll", c.se_nll},
          {"bpd", json_num(c.bpd)},
          {"mean_prior", c.mean_prior},
          {"mean_delta", c.mean_delta},
          {"hutchinson_se", json_num(c.hutchinson_se)},
          {"prior_mismatch", json_num(c.prior_mismatch)}};
}

LikelihoodCell cell_from_json(const nlohmann::json& j) {
  LikelihoodCell c;
  c.tolerance = j.at("tolerance").get<double>();
  c.target_nfe = j.at("target_nfe").get<int>();
  c.nfe = j.at("nfe").get<int64_t>();
  c.seconds = j.at("seconds").get<double>();
  c.mean_nll = json_num_of(j, "mean_nll");
  c.se_nll = j.at("se_nll").get<double>();
  c.bpd = json_num_of(j, "bpd");
  c.mean_prior = j.at("mean_prior").get<double>();
  c.mean_delta = j.at("mean_delta").get<double>();
  c.hutchinson_se = json_num_of(j, "hutchinson_se");
  c.prior_mismatch = json_num_of(j, "prior_mismatch");
  c.resumed = true;
  return c;
}

std::string cell_file(const std::string& key) {
  std::string f = key;
  for (char& ch : f)
    if (ch == '=' || ch == '/') ch = '_';
  return "cells/" + f + ".npy";
}

// log N(x; 0, s^2 I) per row.
at::Tensor gaussian_log_prior(const at::Tensor& x, double s) {
  const double D = double(x.size(1));
  return (x * x).sum(1).mul(-0.5 / (s * s)).sub(0.5 * D * std::log(2.0 * M_PI * s * s));
}

}  // namespace

LikelihoodReport run_likelihood(const LikelihoodSpec& spec, const std::string& out_dir, bool fresh,
                                const StudyProgressFn& progress) {
  validate(spec);
  const auto t_start = std::chrono::steady_clock::now();
  LikelihoodReport rep;
  rep.spec = spec;
  const SDEPtr sde = make_sde(spec.sde);
  const SchedulePtr kernel = sde->schedule();
  const LoadedModel lm = likelihood_model(spec, kernel);
  const int64_t D = dim_of(lm);
  rep.dim = D;
  rep.t_end = spec.t_end < 0 ? sde->default_t_end() : spec.t_end;
  const double T = sde->domain().hi;
  const bool exact_div = use_exact(spec, D);
  rep.divergence = exact_div ? "exact (trace of the Jacobian, " + std::to_string(D) +
                                   " vector-Jacobian products per NFE)"
                             : "Hutchinson, " + std::to_string(spec.probes) + " " + spec.probe +
                                   " probes per row, fixed along the trajectory";
  const at::ScalarType dtype = parse_dtype(spec.dtype);
  const at::Tensor x =
      likelihood_data(spec, lm, *kernel, rep.t_end, rep.data, rep.bpd_offset).to(dtype);
  const bool adaptive = is_adaptive(spec.sampler);
  const GridKind grid = spec.grid.empty() ? default_grid(*kernel) : parse_grid(spec.grid);
  rep.grid = adaptive ? "adaptive" : grid_name(grid);
  if (adaptive) {
    std::vector<double> tols = spec.tolerances;
    std::sort(tols.rbegin(), tols.rend());
    tols.erase(std::unique(tols.begin(), tols.end()), tols.end());
    for (double t : tols) rep.cells.push_back(LikelihoodCell{t});
  } else {
    std::vector<int> nfes = spec.nfe;
    std::sort(nfes.begin(), nfes.end());
    nfes.erase(std::unique(nfes.begin(), nfes.end()), nfes.end());
    for (int v : nfes) {
      LikelihoodCell c;
      c.target_nfe = v;
      rep.cells.push_back(c);
    }
  }

  detail::CellOps<LikelihoodCell> ops;
  ops.read = cell_from_json;
  ops.write = cell_json;
  ops.cost = [](const LikelihoodCell& c) {
    return c.target_nfe > 0 ? double(c.target_nfe) : -std::log10(c.tolerance);
  };
  detail::StudyRunner<LikelihoodCell> runner(out_dir, likelihood_spec_json(spec), fresh,
                                             {"results.csv", "results.md", "nll.npy"}, rep.cells,
                                             ops, progress, t_start);
  const ResultsStore& store = runner.store();
  fs::create_directories(store.path("cells"));

  runner.run([&](LikelihoodCell& c) {
    SamplerOptions o;
    std::vector<double> times;
    if (adaptive) {
      o.rtol = o.atol = c.tolerance;
      times = {rep.t_end, T};
    } else {
      SampleSpec ss;
      ss.steps = make_sampler(spec.sampler)->steps_for_nfe(c.target_nfe);
      ss.grid = grid;
      ss.t_end = rep.t_end;
      const std::vector<double> down = spec_grid(*sde, ss);
      times.assign(down.rbegin(), down.rend());
    }
    const auto sampler = make_sampler(spec.sampler, o);
    AugmentedFlowModel aug(*lm.model, kernel, lm.event_shape, spec.n,
                           exact_div ? Divergence::Exact : Divergence::Hutchinson, spec.probes,
                           spec.probe == "gaussian", spec.seed ^ 0x9e3779b97f4a7c15ULL, dtype);
    SampleRequest r;
    r.model = &aug;
    r.sde = sde.get();
    r.times = times;
    r.x_init = aug.augment(x);
    const auto t0 = std::chrono::steady_clock::now();
    const SampleResult res = sampler->run(r);
    c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    c.nfe = res.nfe;
    const at::Tensor z = res.x.to(at::kDouble);
    const at::Tensor xT = z.narrow(1, 0, D), l = z.narrow(1, D, aug.columns());
    const at::Tensor prior = spec.prior == "exact"
                                 ? lm.mixture->log_prob(xT, kernel->alpha(T), kernel->sigma(T))
                                 : gaussian_log_prior(xT, sde->prior_std());
    if (lm.mixture && spec.prior == "gaussian")
      c.prior_mismatch = (lm.mixture->log_prob(xT, kernel->alpha(T), kernel->sigma(T)) - prior)
                             .mean()
                             .item<double>();
    const at::Tensor delta = l.mean(1);
    const at::Tensor row_se = aug.columns() > 1 ? l.std(1) / std::sqrt(double(aug.columns()))
                                                : at::zeros({spec.n}, at::kDouble);
    const at::Tensor logp = prior + delta;
    require_finite(logp, "the log-likelihood of cell " + c.key());
    c.mean_nll = -logp.mean().item<double>();
    c.se_nll = spec.n > 1 ? logp.std().item<double>() / std::sqrt(double(spec.n)) : 0.0;
    c.bpd = c.mean_nll / (double(D) * kLn2) + rep.bpd_offset;
    c.mean_prior = prior.mean().item<double>();
    c.mean_delta = delta.mean().item<double>();
    // The probes' error of the mean: exact divergence none, one probe per row no estimate.
    c.hutchinson_se = exact_div ? 0.0
                      : aug.columns() == 1
                          ? std::numeric_limits<double>::quiet_NaN()
                          : row_se.pow(2).sum().sqrt().item<double>() / double(spec.n);
    write_npy(store.path(cell_file(c.key())), at::stack({logp, prior, delta, row_se}, 1));
  });
  rep.resumed = runner.resumed();
  rep.computed = runner.computed();

  // Errors against the exact log-density (mixture data under its exact model) or the most
  // accurate cell (the last: smallest tolerance, largest NFE), and the fitted order.
  std::vector<at::Tensor> rows;
  for (const auto& c : rep.cells) rows.push_back(read_npy(store.path(cell_file(c.key()))));
  at::Tensor ref;
  const bool exact_ref = lm.mixture && spec.data == "mixture" && spec.prior == "exact";
  if (lm.mixture && spec.data == "mixture") {
    const at::Tensor exact = lm.mixture->log_prob(
        x.reshape({spec.n, D}).to(at::kDouble), kernel->alpha(rep.t_end), kernel->sigma(rep.t_end));
    rep.exact_gap = (rows.back().select(1, 0) - exact).mean().item<double>();
    if (exact_ref) ref = exact;
  }
  if (exact_ref) {
    rep.reference = "the mixture's exact log p(t_end) (closed form)";
  } else {
    ref = rows.back().select(1, 0);
    rep.reference = "the most accurate cell (" + rep.cells.back().key() + ")";
  }
  std::vector<double> nfe, err;
  const std::size_t last = exact_ref ? rows.size() : rows.size() - 1;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const at::Tensor e = (rows[i].select(1, 0) - ref).abs();
    if (i < last) {
      rep.cells[i].error = e.mean().item<double>();
      rep.cells[i].max_error = e.max().item<double>();
      if (rep.cells[i].error > 0) {
        nfe.push_back(double(rep.cells[i].nfe));
        err.push_back(rep.cells[i].error);
      }
    }
  }
  if (nfe.size() >= 2) {
    const OrderFit f = fit_order_auto(nfe, err);
    rep.order = f.order;
    rep.order_se = f.std_error;
  }
  write_npy(store.path("nll.npy"), rows.back().select(1, 0).neg());
  return rep;
}

std::string likelihood_protocol(const LikelihoodReport& r) {
  std::ostringstream os;
  os << "Model " << r.spec.model << ", SDE " << r.spec.sde << ", " << r.spec.dtype
     << ". Data: " << r.data << ", taken as points at t_end = " << r.t_end << " (D = " << r.dim
     << ").\n"
     << "log p(x) = log p_T(x_T) + the integral over [t_end, T] of div v along the PF-ODE from x, "
        "solved by "
     << r.spec.sampler
     << (r.grid == "adaptive" ? " (rtol = atol per cell)" : " on the " + r.grid + " grid")
     << "; divergence: " << r.divergence
     << ". Prior: " << (r.spec.prior == "exact" ? "the mixture's exact p_T" : "N(0, prior_std^2 I)")
     << ".\n"
     << "NLL in nats per sample (mean +- standard error over rows; Hutchinson's probe error "
        "apart); bits/dim = NLL / (D ln 2)"
     << (r.bpd_offset != 0 ? " + 7 (the dequantization's change of variables)" : "") << ".\n"
     << "Errors: mean and max over rows of |log p - reference|, reference " << r.reference << "."
     << (std::isnan(r.order) ? std::string()
                             : " Fitted order (error vs NFE): " + fmt(r.order, 3) + " +- " +
                                   fmt(r.order_se, 2) + ".")
     << "\n";
  return os.str();
}

namespace {
Table cell_table(const LikelihoodReport& r, bool csv) {
  Table t;
  t.column("cell", Table::Align::Left)
      .column("NFE")
      .column("NLL (nats)")
      .column("+- SE")
      .column("bits/dim")
      .column("prior term")
      .column("divergence term")
      .column("Hutchinson SE")
      .column("mean error")
      .column("max error")
      .column("seconds");
  auto num = [&](double v, int prec) { return csv ? detail::csv_num(v) : fmt(v, prec); };
  for (const auto& c : r.cells)
    t.row({c.key(), std::to_string(c.nfe), num(c.mean_nll, 8), num(c.se_nll, 3), num(c.bpd, 6),
           num(c.mean_prior, 6), num(c.mean_delta, 6), num(c.hutchinson_se, 3), num(c.error, 3),
           num(c.max_error, 3), num(c.seconds, 3)});
  return t;
}
}  // namespace

std::string likelihood_markdown(const LikelihoodReport& r) {
  std::ostringstream os;
  os << cell_table(r, false).markdown();
  if (!r.cells.empty() && !std::isnan(r.cells.back().prior_mismatch))
    os << "\nPrior mismatch (mean over rows of the exact log p_T(x_T) minus the Gaussian prior's), "
          "most accurate cell: "
       << fmt(r.cells.back().prior_mismatch, 6) << " nats.\n";
  if (!std::isnan(r.exact_gap))
    os << (r.cells.back().prior_mismatch == r.cells.back().prior_mismatch ? "" : "\n")
       << "Most accurate cell minus the exact log p(t_end), mean over rows: " << fmt(r.exact_gap, 6)
       << " nats.\n";
  return os.str();
}

std::string likelihood_report_json(const LikelihoodReport& r) {
  nlohmann::json j;
  j["spec"] = nlohmann::json::parse(likelihood_spec_json(r.spec));
  j["data"] = r.data;
  j["divergence"] = r.divergence;
  j["reference"] = r.reference;
  j["t_end"] = r.t_end;
  j["dim"] = r.dim;
  j["bpd_offset"] = r.bpd_offset;
  j["order"] = json_num(r.order);
  j["order_se"] = r.order_se;
  j["exact_gap"] = json_num(r.exact_gap);
  j["cells"] = nlohmann::json::array();
  for (const auto& c : r.cells) {
    nlohmann::json x = cell_json(c);
    x["error"] = json_num(c.error);
    x["max_error"] = json_num(c.max_error);
    x["resumed"] = c.resumed;
    j["cells"].push_back(x);
  }
  j["resumed"] = r.resumed;
  j["computed"] = r.computed;
  return j.dump(2);
}

void write_likelihood_tables(const LikelihoodReport& r, const std::string& out_dir) {
  detail::write_text_atomically((fs::path(out_dir) / "results.csv").string(),
                                cell_table(r, true).csv());
  detail::write_text_atomically((fs::path(out_dir) / "results.md").string(),
                                likelihood_protocol(r) + "\n" + likelihood_markdown(r));
}

}  // namespace sdekit
