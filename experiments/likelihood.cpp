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
#include "experiments/distributed.hpp"
#include "experiments/elbo.hpp"
#include "experiments/npy_io.hpp"
#include "experiments/order_fit.hpp"
#include "experiments/table.hpp"
#include "models/dtype.hpp"
#include "models/likelihood_flow.hpp"
#include "models/resources.hpp"
#include "networks/loader.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "schedules/vp_discrete.hpp"
#include "solvers/registry.hpp"
#include "solvers/row_noise.hpp"
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

bool is_elbo(const LikelihoodSpec& spec) {
  return spec.method == "elbo";
}

// The bound method elbo computes: ddpm (vp-discrete tables) or continuous.
std::string resolved_bound(const LikelihoodSpec& spec, const NoiseSchedule& k) {
  if (spec.bound != "auto") return spec.bound;
  return dynamic_cast<const VPDiscrete*>(&k) ? "ddpm" : "continuous";
}

// The DDPM bound's decoder for 8-bit data: the discretized Gaussian.
bool discretized_decoder(const LikelihoodSpec& spec) {
  return spec.decoder == "discretized" || (spec.decoder == "auto" && spec.data == "fashion-mnist");
}

// The data rows [n, ...event] at t_end and the bits-per-dimension offset.
// 8-bit images are dequantized unless `dequantize` is false (the discretized decoder's data,
// x = byte / 127.5 - 1, offset 0).
at::Tensor likelihood_data(const LikelihoodSpec& spec, const LoadedModel& lm,
                           const NoiseSchedule& k, double t_end, bool dequantize, std::string& what,
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
    if (!dequantize) {
      what = "the first " + std::to_string(spec.n) +
             " Fashion-MNIST test images, 8-bit: x = byte / 127.5 - 1";
      return bytes.div(127.5).sub(1.0).reshape(shape);
    }
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
  if (elbo) return "elbo";
  return target_nfe > 0 ? "nfe=" + std::to_string(target_nfe) : "tol=" + tol_text(tolerance);
}

void validate(const LikelihoodSpec& spec) {
  const SDEPtr sde = detail::with_field("sde", [&] { return make_sde(spec.sde); });
  const SchedulePtr k = sde->schedule();
  if (!k)
    throw std::invalid_argument("field 'sde': '" + spec.sde +
                                "' has no Gaussian kernel; the likelihood needs an affine SDE");
  if (spec.rng != "rows")
    throw std::invalid_argument("field 'rng': '" + spec.rng +
                                "'; valid: rows (row-keyed draws, the only kind)");
  if (spec.method != "ode" && spec.method != "elbo")
    throw std::invalid_argument("field 'method': '" + spec.method + "'; valid: ode, elbo");
  if (spec.bound != "auto" && spec.bound != "ddpm" && spec.bound != "continuous")
    throw std::invalid_argument("field 'bound': '" + spec.bound +
                                "'; valid: auto, ddpm, continuous");
  if (spec.variance != "beta" && spec.variance != "posterior")
    throw std::invalid_argument("field 'variance': '" + spec.variance +
                                "'; valid: beta, posterior");
  if (spec.decoder != "auto" && spec.decoder != "gaussian" && spec.decoder != "discretized")
    throw std::invalid_argument("field 'decoder': '" + spec.decoder +
                                "'; valid: auto, gaussian, discretized");
  if (!(spec.decoder_std > 0.0 && spec.decoder_std < 1.0))
    throw std::invalid_argument("field 'decoder_std': must lie in (0, 1), got " +
                                tol_text(spec.decoder_std));
  if (is_elbo(spec)) {
    const std::string b = resolved_bound(spec, *k);
    const auto* vpd = dynamic_cast<const VPDiscrete*>(k.get());
    if (b == "ddpm" && !vpd)
      throw std::invalid_argument(
          "field 'bound': 'ddpm' is the bound of a discrete DDPM table "
          "(--sde vp-discrete); '" +
          spec.sde + "' is continuous (use continuous)");
    const int64_t max_k = b == "ddpm" ? vpd->steps() - 1 : detail::kMaxNfe;
    if (spec.timesteps < 1 || spec.timesteps > max_k)
      throw std::invalid_argument("field 'timesteps': draws per row must lie in [1, " +
                                  std::to_string(max_k) + "], got " +
                                  std::to_string(spec.timesteps));
    if (b == "ddpm" && discretized_decoder(spec) && spec.data == "mixture")
      throw std::invalid_argument(
          "field 'decoder': 'discretized' is for 8-bit data; mixture samples are continuous "
          "(use gaussian)");
    if (b != "ddpm" && spec.decoder == "discretized")
      throw std::invalid_argument(
          "field 'decoder': the discretized decoder belongs to the ddpm bound; the continuous "
          "bound's decoder is Gaussian (decoder_std)");
  }
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
  if (dist::active() && spec.n < dist::world())
    throw std::invalid_argument("field 'n': " + std::to_string(spec.n) + " rows over " +
                                std::to_string(dist::world()) +
                                " processes leave a rank without rows");
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
  if (!spec.reference.empty()) {
    if (spec.reference.rfind("npy:", 0) != 0)
      throw std::invalid_argument("field 'reference': 'npy:FILE.npy' (per-row NLL in nats), got '" +
                                  spec.reference + "'");
    if (!fs::exists(spec.reference.substr(4)))
      throw std::invalid_argument("field 'reference': file '" + spec.reference.substr(4) +
                                  "' does not exist");
  }
  if (spec.prior == "exact" && !lm.mixture)
    throw std::invalid_argument(
        "field 'prior': 'exact' is the noised density p_T of an exact "
        "mixture; model '" +
        spec.model + "' has none (use gaussian)");
  const int64_t D = dim_of(lm);
  // The state, the model's activations for the divergence's backward passes.
  require_memory("field 'n' (" + std::to_string(spec.n) + ")", 64.0 * 8.0 * double(spec.n) * D);
  // A model that cannot give gradients fails here, before any work (the ODE's divergence needs
  // them; the bounds do not).
  if (is_elbo(spec)) return;
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
      {"rng", &S::rng,
       "rows: row i's probes and bound draws depend only on (seed, i), the same over any number "
       "of processes (the only kind)"},
      {"method", &S::method,
       "ode (the probability-flow ODE) | elbo (a variational bound, one Monte Carlo cell)"},
      {"bound", &S::bound,
       "elbo: auto (ddpm under vp-discrete, else continuous) | ddpm (the discrete DDPM bound, "
       "data at t = 0) | continuous (the reverse SDE's bound, data at t_end)",
       true},
      {"timesteps", &S::timesteps,
       "elbo: stratified draws of the time per row (ddpm: at most N - 1, which is the exact sum)",
       true},
      {"variance", &S::variance, "ddpm: the reverse kernels' variance, beta | posterior", true},
      {"decoder", &S::decoder,
       "ddpm: auto (discretized for Fashion-MNIST, else gaussian) | gaussian | discretized "
       "(8-bit data)",
       true},
      {"decoder_std", &S::decoder_std,
       "continuous bound: the Gaussian decoder's standard deviation relative to the data", true},
      {"reference", &S::reference,
       "npy:FILE.npy: per-row NLL in nats (an earlier run's nll.npy) to measure errors against",
       true},
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
      {"param", &S::param, "torchscript models: eps | x0 | v | score | denoiser | flow", true},
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
          {"prior_mismatch", json_num(c.prior_mismatch)},
          {"elbo", c.elbo},
          {"mean_decoder", c.mean_decoder}};
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
  c.elbo = j.value("elbo", false);
  c.mean_decoder = j.value("mean_decoder", 0.0);
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
  const bool elbo = is_elbo(spec);
  rep.bound = elbo ? resolved_bound(spec, *kernel) : "";
  const bool ddpm = rep.bound == "ddpm";
  const auto* vpd = dynamic_cast<const VPDiscrete*>(kernel.get());
  rep.t_end = ddpm ? 0.0 : spec.t_end < 0 ? sde->default_t_end() : spec.t_end;
  const double T = sde->domain().hi;
  const bool exact_div = use_exact(spec, D);
  const bool discretized = ddpm && discretized_decoder(spec);
  if (elbo)
    rep.divergence =
        ddpm ? "DDPM's discrete bound over the " + std::to_string(vpd->steps()) +
                   "-step table (reverse variance " +
                   (spec.variance == "posterior" ? std::string("the posterior's") : "beta_n") +
                   ", " + (discretized ? "discretized 8-bit" : "Gaussian") + " decoder), " +
                   std::to_string(spec.timesteps) + " stratified draws of n per row"
             : "the continuous-time bound of the reverse SDE in the log-SNR of q(x_t | x), " +
                   std::to_string(spec.timesteps) +
                   " stratified draws per row, Gaussian decoder of relative std " +
                   tol_text(spec.decoder_std);
  else
    rep.divergence = exact_div ? "exact (trace of the Jacobian, " + std::to_string(D) +
                                     " vector-Jacobian products per NFE)"
                               : "Hutchinson, " + std::to_string(spec.probes) + " " + spec.probe +
                                     " probes per row, fixed along the trajectory";
  const at::ScalarType dtype = parse_dtype(spec.dtype);
  const at::Tensor x64 =
      likelihood_data(spec, lm, *kernel, rep.t_end, !discretized, rep.data, rep.bpd_offset);
  const at::Tensor x = x64.to(dtype);
  const bool adaptive = is_adaptive(spec.sampler);
  const GridKind grid = spec.grid.empty() ? default_grid(*kernel) : parse_grid(spec.grid);
  rep.grid = adaptive ? "adaptive" : grid_name(grid);
  if (elbo) {
    LikelihoodCell c;
    c.elbo = true;
    rep.cells.push_back(c);
    rep.grid = "";
  } else if (adaptive) {
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
    if (c.elbo) return 1.0;
    return c.target_nfe > 0 ? double(c.target_nfe) : -std::log10(c.tolerance);
  };
  detail::StudyRunner<LikelihoodCell> runner(out_dir, likelihood_spec_json(spec), fresh,
                                             {"results.csv", "results.md", "nll.npy"}, rep.cells,
                                             ops, progress, t_start);
  // Over several processes (docs/theory.md section 10) every rank takes rows [lo, hi) of each
  // cell, with row-keyed probes and draws; rank 0 gathers the per-row results and alone writes.
  const bool writer = dist::writer();
  if (writer) fs::create_directories(runner.store().path("cells"));
  const auto [row_lo, row_hi] = dist::shard(spec.n);
  const int64_t m_rows = row_hi - row_lo;
  const at::Tensor x_mine = x.narrow(0, row_lo, m_rows), x64_mine = x64.narrow(0, row_lo, m_rows);
  // The per-row columns of a cell, every rank's rows in order.
  const auto gathered = [&](const at::Tensor& cols) {
    return dist::all_gather_rows(cols.contiguous(), "the cell's per-row results");
  };

  runner.run(
      [&](LikelihoodCell& c) {
        if (c.elbo) {
          ElboOptions eo;
          eo.timesteps = spec.timesteps;
          eo.posterior_variance = spec.variance == "posterior";
          eo.discretized = discretized;
          eo.decoder_std = spec.decoder_std;
          eo.prior_std = sde->prior_std();
          eo.seed = spec.seed ^ 0x5851f42d4c957f2dULL;
          eo.first_row = row_lo;
          eo.log_variance = elbo_data_log_variance(x64);
          eo.dtype = dtype;
          if (spec.prior == "exact")
            eo.log_prior = [&](const at::Tensor& z) {
              return lm.mixture->log_prob(z, kernel->alpha(T), kernel->sigma(T));
            };
          const auto t0 = std::chrono::steady_clock::now();
          const ElboRows er = ddpm ? ddpm_elbo(*lm.model, *vpd, lm.event_shape, x64_mine, eo)
                                   : continuous_elbo(*lm.model, *kernel, lm.event_shape, x64_mine,
                                                     rep.t_end, T, eo);
          const at::Tensor rows =
              gathered(at::stack({er.total.neg(), er.prior, er.diffusion, er.decoder}, 1));
          const at::Tensor total = rows.select(1, 0).neg();
          c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          c.nfe = er.nfe;
          c.mean_nll = total.mean().item<double>();
          c.se_nll = spec.n > 1 ? total.std().item<double>() / std::sqrt(double(spec.n)) : 0.0;
          c.bpd = c.mean_nll / (double(D) * kLn2) + rep.bpd_offset;
          c.mean_prior = rows.select(1, 1).mean().item<double>();
          c.mean_delta = rows.select(1, 2).mean().item<double>();
          c.mean_decoder = rows.select(1, 3).mean().item<double>();
          c.hutchinson_se = 0.0;
          if (writer) write_npy(runner.store().path(cell_file(c.key())), rows);
          return;
        }
        SamplerOptions o;
        std::vector<double> times;
        if (adaptive) {
          o.rtol = o.atol = c.tolerance;
          times = {rep.t_end, T};
        } else {
          SampleSpec ss;
          ss.steps = make_sampler(spec.sampler)->steps_for_nfe(c.target_nfe);
          ss.grid = grid;
          ss.grid_file = grid_file_of(spec.grid);
          ss.t_end = rep.t_end;
          const std::vector<double> down = spec_grid(*sde, ss);
          times.assign(down.rbegin(), down.rend());
        }
        const auto sampler = make_sampler(spec.sampler, o);
        // Row-keyed probes: row i's are draw 0 of the stream (probe seed, i), [P, D] (Rademacher:
        // the signs of standard normals).
        at::Tensor probes;
        if (!exact_div) {
          probes = row_normal({m_rows, spec.probes, D}, at::kDouble,
                              spec.seed ^ 0x9e3779b97f4a7c15ULL, row_lo, 0)
                       .permute({1, 0, 2});
          if (spec.probe != "gaussian")
            probes = at::where(probes >= 0.0, 1.0, -1.0).to(at::kDouble);
        }
        AugmentedFlowModel aug(*lm.model, kernel, lm.event_shape, m_rows,
                               exact_div ? Divergence::Exact : Divergence::Hutchinson, spec.probes,
                               spec.probe == "gaussian", spec.seed ^ 0x9e3779b97f4a7c15ULL, dtype,
                               probes);
        SampleRequest r;
        r.model = &aug;
        r.sde = sde.get();
        r.times = times;
        r.x_init = aug.augment(x_mine);
        const auto t0 = std::chrono::steady_clock::now();
        const SampleResult res = sampler->run(r);
        c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        c.nfe = res.nfe;
        const at::Tensor z = res.x.to(at::kDouble);
        const at::Tensor xT = z.narrow(1, 0, D), l = z.narrow(1, D, aug.columns());
        const at::Tensor prior_mine =
            spec.prior == "exact" ? lm.mixture->log_prob(xT, kernel->alpha(T), kernel->sigma(T))
                                  : gaussian_log_prior(xT, sde->prior_std());
        const at::Tensor mismatch_mine =
            lm.mixture && spec.prior == "gaussian"
                ? lm.mixture->log_prob(xT, kernel->alpha(T), kernel->sigma(T)) - prior_mine
                : at::zeros({m_rows}, at::kDouble);
        const at::Tensor row_se_mine = aug.columns() > 1
                                           ? l.std(1) / std::sqrt(double(aug.columns()))
                                           : at::zeros({m_rows}, at::kDouble);
        const at::Tensor all =
            gathered(at::stack({prior_mine, l.mean(1), row_se_mine, mismatch_mine}, 1));
        const at::Tensor prior = all.select(1, 0), delta = all.select(1, 1),
                         row_se = all.select(1, 2);
        if (lm.mixture && spec.prior == "gaussian")
          c.prior_mismatch = all.select(1, 3).mean().item<double>();
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
        if (writer)
          write_npy(runner.store().path(cell_file(c.key())),
                    at::stack({logp, prior, delta, row_se}, 1));
      },
      detail::Share::Rows);
  if (!writer) return rep;  // rank 0 reports
  const ResultsStore& store = runner.store();
  rep.resumed = runner.resumed();
  rep.computed = runner.computed();

  // Errors against a reference: the per-row NLL of `reference`, the exact log-density (mixture
  // data; for the ODE with the exact prior) or else, for the ODE, the most accurate cell (the
  // last: smallest tolerance, largest NFE); the fitted order.
  std::vector<at::Tensor> rows;
  for (const auto& c : rep.cells) rows.push_back(read_npy(store.path(cell_file(c.key()))));
  at::Tensor ref;           // per-row log p
  bool ref_outside = true;  // the reference is no cell: every cell gets an error
  if (lm.mixture && spec.data == "mixture") {
    const at::Tensor xr = x64.reshape({spec.n, D});
    const at::Tensor exact =
        lm.mixture->log_prob(xr, kernel->alpha(rep.t_end), kernel->sigma(rep.t_end));
    if (!elbo) {
      rep.exact_gap = (rows.back().select(1, 0) - exact).mean().item<double>();
      rep.t_end_term = (exact - lm.mixture->log_prob(xr, 1.0, 0.0)).mean().item<double>();
    }
    if (elbo || spec.prior == "exact") {
      ref = exact;
      rep.reference =
          std::string("the mixture's exact log p(") + (ddpm ? "0" : "t_end") + ") (closed form)";
    }
  }
  if (!spec.reference.empty()) {
    const std::string path = spec.reference.substr(4);
    const at::Tensor r = read_npy(path).to(at::kDouble).reshape({-1});
    if (r.size(0) < spec.n)
      throw std::invalid_argument("field 'reference': '" + path + "' holds " +
                                  std::to_string(r.size(0)) + " values, the run has " +
                                  std::to_string(spec.n) + " rows");
    require_finite(r, "field 'reference': '" + path + "'");
    ref = r.narrow(0, 0, spec.n).neg();
    rep.reference = "the per-row NLL of " + path;
  }
  if (!ref.defined() && !elbo) {
    ref = rows.back().select(1, 0);
    rep.reference = "the most accurate cell (" + rep.cells.back().key() + ")";
    ref_outside = false;
  }
  std::vector<double> nfe, err;
  const std::size_t last = ref_outside ? rows.size() : rows.size() - 1;
  for (std::size_t i = 0; ref.defined() && i < last; ++i) {
    const at::Tensor d = ref - rows[i].select(1, 0);  // NLL minus the reference NLL
    const at::Tensor e = d.abs();
    LikelihoodCell& c = rep.cells[i];
    c.error = e.mean().item<double>();
    c.max_error = e.max().item<double>();
    c.gap = d.mean().item<double>();
    c.gap_se = spec.n > 1 ? d.std().item<double>() / std::sqrt(double(spec.n)) : 0.0;
    if (!c.elbo && c.error > 0) {
      nfe.push_back(double(c.nfe));
      err.push_back(c.error);
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
  const bool elbo = !r.bound.empty();
  os << "Model " << r.spec.model << ", SDE " << r.spec.sde << ", " << r.spec.dtype
     << ". Data: " << r.data << ", taken as points at t = " << r.t_end << " (D = " << r.dim
     << ").\n";
  if (elbo)
    os << "Variational bound on -log p(x): " << r.divergence << ". Prior: "
       << (r.spec.prior == "exact" ? "the mixture's exact p_T" : "N(0, prior_std^2 I)")
       << ".\nBound in nats per sample (mean +- standard error over rows, which holds the time and "
          "noise draws' variance), with its prior (L_T), diffusion and decoder terms apart";
  else
    os << "log p(x) = log p_T(x_T) + the integral over [t_end, T] of div v along the PF-ODE from "
          "x, solved by "
       << r.spec.sampler
       << (r.grid == "adaptive" ? " (rtol = atol per cell)" : " on the " + r.grid + " grid")
       << "; divergence: " << r.divergence << ". Prior: "
       << (r.spec.prior == "exact" ? "the mixture's exact p_T" : "N(0, prior_std^2 I)")
       << ".\nNLL in nats per sample (mean +- standard error over rows; Hutchinson's probe error "
          "apart)";
  os << "; bits/dim = NLL / (D ln 2)"
     << (r.bpd_offset != 0 ? " + 7 (the dequantization's change of variables)" : "") << ".\n";
  if (!r.reference.empty())
    os << "Errors: mean and max over rows of |log p - reference| and the mean gap NLL - reference "
          "NLL, reference "
       << r.reference << ".";
  os << (std::isnan(r.order) ? std::string()
                             : " Fitted order (error vs NFE): " + fmt(r.order, 3) + " +- " +
                                   fmt(r.order_se, 2) + ".")
     << "\n";
  return os.str();
}

namespace {
Table cell_table(const LikelihoodReport& r, bool csv) {
  const bool elbo = !r.bound.empty();
  Table t;
  t.column("cell", Table::Align::Left)
      .column("NFE")
      .column(elbo ? "bound (nats)" : "NLL (nats)")
      .column("+- SE")
      .column("bits/dim");
  if (elbo)
    t.column("prior term L_T").column("diffusion term").column("decoder term");
  else
    t.column("prior term").column("divergence term").column("Hutchinson SE");
  t.column("mean error").column("max error").column("gap").column("gap SE").column("seconds");
  auto num = [&](double v, int prec) { return csv ? detail::csv_num(v) : fmt(v, prec); };
  for (const auto& c : r.cells)
    t.row({c.key(), std::to_string(c.nfe), num(c.mean_nll, 8), num(c.se_nll, 3), num(c.bpd, 6),
           num(c.mean_prior, 6), num(c.mean_delta, 6),
           elbo ? num(c.mean_decoder, 6) : num(c.hutchinson_se, 3), num(c.error, 3),
           num(c.max_error, 3), num(c.gap, 3), num(c.gap_se, 3), num(c.seconds, 3)});
  return t;
}
}  // namespace

std::string likelihood_markdown(const LikelihoodReport& r) {
  std::ostringstream os;
  os << cell_table(r, false).markdown();
  std::string sep = "\n";
  if (!r.cells.empty() && !std::isnan(r.cells.back().prior_mismatch)) {
    os << sep
       << "Prior mismatch (mean over rows of the exact log p_T(x_T) minus the Gaussian prior's), "
          "most accurate cell: "
       << fmt(r.cells.back().prior_mismatch, 6) << " nats.\n";
    sep = "";
  }
  if (!std::isnan(r.exact_gap)) {
    os << sep
       << "Most accurate cell minus the exact log p(t_end), mean over rows: " << fmt(r.exact_gap, 6)
       << " nats.\n";
    sep = "";
  }
  if (!std::isnan(r.t_end_term))
    os << sep << "t_end's contribution, exact log p(t_end) - log p(0) at the data, mean over rows: "
       << fmt(r.t_end_term, 6) << " nats.\n";
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
  j["t_end_term"] = json_num(r.t_end_term);
  j["bound"] = r.bound;
  j["cells"] = nlohmann::json::array();
  for (const auto& c : r.cells) {
    nlohmann::json x = cell_json(c);
    x["error"] = json_num(c.error);
    x["max_error"] = json_num(c.max_error);
    x["gap"] = json_num(c.gap);
    x["gap_se"] = c.gap_se;
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
