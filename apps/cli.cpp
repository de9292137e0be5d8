#include "apps/cli.hpp"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <stdexcept>

#include "apps/npy_io.hpp"
#include "experiments/moments.hpp"
#include "models/builtin.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/brownian_tree.hpp"
#include "solvers/registry.hpp"
#include "solvers/sample.hpp"

namespace sdekit {

namespace {

at::ScalarType parse_dtype(const std::string& s) {
  if (s == "float32") return at::kFloat;
  if (s == "float64") return at::kDouble;
  throw std::invalid_argument("unknown dtype '" + s + "'; valid: float32, float64");
}

std::string fmt_shape(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

std::string fmt(double v, int prec = 4) {
  std::ostringstream os;
  os << std::setprecision(prec) << v;
  return os.str();
}

// ------------------------------------------------------------------------------------------
// sdekit list

void cmd_list(std::ostream& out) {
  out << "SDEs / schedules (--sde):\n";
  for (const auto& s : schedule_registry())
    out << "  " << std::left << std::setw(16) << s.name << s.summary << "\n";
  out << "\nTime grids (--grid):\n";
  for (const auto& g : grid_registry())
    out << "  " << std::left << std::setw(16) << g.name << g.summary << "\n";
  out << "\nSamplers (--sampler):                order  NFE/step  kind\n";
  for (const auto& s : sampler_registry()) {
    const auto sm = s.make(SamplerOptions{});
    out << "  " << std::left << std::setw(20) << s.name << std::right << std::setw(6)
        << (sm->order() > 0 ? fmt(sm->order()) : std::string("-")) << std::setw(10)
        << sm->nfe_per_step() << "  " << (sm->stochastic() ? "stochastic" : "deterministic") << "  "
        << s.summary << "\n";
  }
  out << "  (order: global order of the deterministic samplers; weak order, and strong order for "
         "additive noise, of "
         "the stochastic ones)\n";
  out << "\nModels (--model):\n";
  for (const auto& m : model_registry())
    out << "  " << std::left << std::setw(16) << m.name << m.summary << "\n";
  out << "\nParameterizations: eps, x0, v, score, denoiser (converted exactly; THEORY.md section "
         "3)\n";
}

// ------------------------------------------------------------------------------------------
// sdekit sample

// Options every sampler may take (SamplerOptions), shared by `sample` and `encode`.
struct SamplerArgs {
  std::string sampler = "heun";
  double eta = 0.0;
  std::string variance = "posterior";
  int nfe = 0;
  double rtol = 1e-5, atol = 1e-5;
  int max_steps = 100000;
  bool dense_output = false;
  bool dpmpp3m_reference = false;
  std::string unipc_variant = "bh2";
  double s_churn = 0, s_tmin = 0, s_tmax = 1e30, s_noise = 1;
  std::string pc_predictor = "reverse-diffusion";
  int corrector_steps = 1;
  double snr = 0.16;
  int langevin_steps = 100;
  double langevin_eps = 2e-5;

  SamplerOptions options() const {
    SamplerOptions o;
    o.eta = eta;
    o.variance = parse_ancestral_variance(variance);
    o.nfe_budget = nfe;
    o.rtol = rtol;
    o.atol = atol;
    o.max_steps = max_steps;
    o.dense_output = dense_output;
    o.dpmpp3m_reference = dpmpp3m_reference;
    o.unipc_variant = parse_unipc_variant(unipc_variant);
    o.s_churn = s_churn;
    o.s_tmin = s_tmin;
    o.s_tmax = s_tmax;
    o.s_noise = s_noise;
    o.pc_predictor = parse_pc_predictor(pc_predictor);
    o.corrector_steps = corrector_steps;
    o.snr = snr;
    o.langevin_steps = langevin_steps;
    o.langevin_eps = langevin_eps;
    return o;
  }
};

void add_sampler_options(CLI::App* c, SamplerArgs& a) {
  c->add_option("--sampler", a.sampler, "Sampler (see `sdekit list`)")->capture_default_str();
  c->add_option("--nfe", a.nfe,
                "NFE budget: sets the steps (and dpm-solver-fast's order schedule)");
  c->add_option("--eta", a.eta, "DDIM eta (0: deterministic)")->capture_default_str();
  c->add_option("--variance", a.variance, "Ancestral variance: posterior | transition")
      ->capture_default_str();
  c->add_option("--rtol", a.rtol, "Adaptive samplers: relative tolerance")->capture_default_str();
  c->add_option("--atol", a.atol, "Adaptive samplers: absolute tolerance")->capture_default_str();
  c->add_option("--max-steps", a.max_steps, "Adaptive samplers: attempted steps before giving up")
      ->capture_default_str();
  c->add_flag("--dense-output", a.dense_output, "dopri5: dense-output stepper");
  c->add_flag("--dpmpp3m-reference", a.dpmpp3m_reference,
              "dpmpp-3m: the reference implementation's (second-order) update");
  c->add_option("--unipc-variant", a.unipc_variant, "UniPC B(h): bh1 | bh2")->capture_default_str();
  c->add_option("--s-churn", a.s_churn, "edm-heun: S_churn")->capture_default_str();
  c->add_option("--s-tmin", a.s_tmin, "edm-heun: S_tmin")->capture_default_str();
  c->add_option("--s-tmax", a.s_tmax, "edm-heun: S_tmax")->capture_default_str();
  c->add_option("--s-noise", a.s_noise, "edm-heun: S_noise")->capture_default_str();
  c->add_option("--predictor", a.pc_predictor, "pc: euler-maruyama | reverse-diffusion | ancestral")
      ->capture_default_str();
  c->add_option("--corrector-steps", a.corrector_steps, "pc: Langevin corrector steps")
      ->capture_default_str();
  c->add_option("--snr", a.snr, "pc: corrector signal-to-noise ratio")->capture_default_str();
  c->add_option("--langevin-steps", a.langevin_steps, "annealed-langevin: steps per level")
      ->capture_default_str();
  c->add_option("--langevin-eps", a.langevin_eps, "annealed-langevin: step scale")
      ->capture_default_str();
}

struct SampleArgs {
  std::string model = "ring2d";
  std::string sde = "vp-linear";
  SamplerArgs s;
  std::string grid;  // empty: the schedule's default
  int steps = 20;
  int64_t n = 1000;
  uint64_t seed = 0;
  std::string x_init;
  double t_end = -1;  // < 0: the SDE's default
  std::string dtype = "float32";
  bool brownian = false;
  std::string out;
};

int cmd_sample(const SampleArgs& a, bool n_given, std::ostream& out) {
  // Validate everything before any work.
  const SDEPtr sde = make_sde(a.sde);
  const SchedulePtr kernel = sde->schedule();
  const auto sampler = make_sampler(a.s.sampler, a.s.options());
  const GaussianMixture mixture = load_mixture(a.model);
  SampleSpec spec;
  spec.options = at::TensorOptions().dtype(parse_dtype(a.dtype));
  spec.steps = a.s.nfe > 0 ? sampler->steps_for_nfe(a.s.nfe) : a.steps;
  if (!a.grid.empty()) spec.grid = parse_grid(a.grid);
  spec.t_end = a.t_end;
  spec.n = a.n;
  spec.event_shape = {mixture.dim()};
  spec.seed = a.seed;
  const Interval d = sde->domain();
  if (a.t_end >= 0 && !(a.t_end > d.lo && a.t_end < d.hi)) {
    std::ostringstream os;
    os << "--t-end must lie in (" << d.lo << ", " << d.hi << ") for --sde " << a.sde << ", got "
       << a.t_end;
    throw std::invalid_argument(os.str());
  }
  spec_grid(*sde, spec);  // grid errors before any work
  if (a.brownian) {
    const double t_end = a.t_end < 0 ? sde->default_t_end() : a.t_end;
    spec.brownian =
        std::make_shared<VirtualBrownianTree>(t_end, d.hi, a.seed, 1e-6 * (d.hi - t_end));
  }
  if (!a.x_init.empty()) {
    spec.x_init = read_npy(a.x_init);
    if (spec.x_init.dim() != 2 || spec.x_init.size(1) != mixture.dim())
      throw std::invalid_argument("--x-init '" + a.x_init + "': expected shape [n, " +
                                  std::to_string(mixture.dim()) + "] for model " + a.model +
                                  ", got " + fmt_shape(spec.x_init));
    if (spec.x_init.size(0) < 1)
      throw std::invalid_argument("--x-init '" + a.x_init + "': holds no rows");
    if (n_given && spec.x_init.size(0) != a.n)
      throw std::invalid_argument("--n " + std::to_string(a.n) + " disagrees with the " +
                                  std::to_string(spec.x_init.size(0)) + " rows of --x-init '" +
                                  a.x_init + "'");
  }
  if (!a.out.empty()) {  // fail on an unwritable output before sampling, not after
    std::ofstream probe(a.out, std::ios::binary | std::ios::app);
    if (!probe) throw std::invalid_argument("--out '" + a.out + "': cannot open for writing");
  }

  GaussianMixtureModel model(mixture, kernel);
  const auto t0 = std::chrono::steady_clock::now();
  const SampleResult res = sample(*sampler, model, *sde, spec);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!a.out.empty()) write_npy(a.out, res.x);

  const double t_end = a.t_end < 0 ? sde->default_t_end() : a.t_end;
  const at::Tensor m = res.x.to(at::kDouble).mean(0);
  const at::Tensor m_exact = mixture.mean(kernel->alpha(t_end));
  out << "sampled " << res.x.size(0) << " x " << res.x.size(1) << " (" << a.dtype << ") from "
      << a.model << " with " << sampler->name() << " on " << a.sde << ", " << a.steps << " steps ("
      << grid_name(spec.grid.value_or(default_grid(*kernel))) << "), t: " << d.hi << " -> " << t_end
      << ", NFE " << res.nfe << ", " << fmt(secs, 3) << " s\n";
  out << "mean error ||m - m_exact|| = " << fmt((m - m_exact).norm().item<double>()) << "\n";
  if (!a.out.empty()) out << "wrote " << a.out << "\n";
  return 0;
}

// ------------------------------------------------------------------------------------------
// sdekit encode

struct EncodeArgs {
  std::string model = "ring2d";
  std::string sde = "vp-linear";
  SamplerArgs s;
  std::string grid;
  int steps = 50;
  std::string x0;
  int64_t n = 1000;
  uint64_t seed = 0;
  double t_start = -1;  // < 0: the SDE's default end time
  std::string dtype = "float64";
  std::string out;
};

int cmd_encode(const EncodeArgs& a, std::ostream& out) {
  const SDEPtr sde = make_sde(a.sde);
  const SchedulePtr kernel = sde->schedule();
  const auto sampler = make_sampler(a.s.sampler, a.s.options());
  if (sampler->stochastic())
    throw std::invalid_argument("--sampler " + a.s.sampler +
                                " is stochastic; encoding needs a deterministic one");
  const GaussianMixture mixture = load_mixture(a.model);
  const Interval d = sde->domain();
  SampleSpec spec;
  spec.options = at::TensorOptions().dtype(parse_dtype(a.dtype));
  spec.steps = a.s.nfe > 0 ? sampler->steps_for_nfe(a.s.nfe) : a.steps;
  if (!a.grid.empty()) spec.grid = parse_grid(a.grid);
  spec.t_end = a.t_start < 0 ? sde->default_t_end() : a.t_start;
  if (!(spec.t_end > d.lo && spec.t_end < d.hi)) {
    std::ostringstream os;
    os << "--t-start must lie in (" << d.lo << ", " << d.hi << ") for --sde " << a.sde << ", got "
       << spec.t_end;
    throw std::invalid_argument(os.str());
  }
  const std::vector<double> down = spec_grid(*sde, spec);
  const std::vector<double> up(down.rbegin(), down.rend());
  at::Tensor x0;
  if (!a.x0.empty()) {
    x0 = read_npy(a.x0);
    if (x0.dim() != 2 || x0.size(1) != mixture.dim() || x0.size(0) < 1)
      throw std::invalid_argument("--x0 '" + a.x0 + "': expected shape [n, " +
                                  std::to_string(mixture.dim()) + "] for model " + a.model +
                                  ", got " + fmt_shape(x0));
    x0 = x0.to(spec.options);
  } else {
    if (a.n < 1) throw std::invalid_argument("--n must be >= 1, got " + std::to_string(a.n));
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(a.seed);
    x0 = mixture.sample(a.n, kernel->alpha(spec.t_end), kernel->sigma(spec.t_end), g, spec.options);
  }
  if (!a.out.empty()) {
    std::ofstream probe(a.out, std::ios::binary | std::ios::app);
    if (!probe) throw std::invalid_argument("--out '" + a.out + "': cannot open for writing");
  }
  GaussianMixtureModel model(mixture, kernel);
  SampleRequest req;
  req.model = &model;
  req.sde = sde.get();
  req.times = up;
  req.x_init = x0;
  const SampleResult enc = sampler->run(req);
  if (!a.out.empty()) write_npy(a.out, enc.x);
  req.times = down;
  req.x_init = enc.x;
  const SampleResult dec = sampler->run(req);
  const at::Tensor diff = (dec.x - x0).to(at::kDouble);
  out << "encoded " << x0.size(0) << " x " << x0.size(1) << " from t = " << spec.t_end
      << " to T = " << d.hi << " with " << sampler->name() << " (" << enc.steps << " steps, NFE "
      << enc.nfe << ")\n";
  out << "round trip (decode with the same sampler, NFE " << dec.nfe << "): rms error "
      << fmt(diff.pow(2).mean().sqrt().item<double>()) << ", max error "
      << fmt(diff.abs().max().item<double>()) << "\n";
  if (!a.out.empty()) out << "wrote " << a.out << "\n";
  return 0;
}

// ------------------------------------------------------------------------------------------
// sdekit moments

struct MomentsArgs {
  std::string model = "ring2d";
  std::string sde = "vp-linear";
  std::vector<std::string> samplers;
  std::string grid;
  int steps = 50;
  int64_t n = 4000;
  uint64_t seed = 0;
  std::string dtype = "float64";
};

int cmd_moments(const MomentsArgs& a, std::ostream& out) {
  const SDEPtr sde = make_sde(a.sde);
  MomentsSpec spec;
  if (!a.samplers.empty()) spec.samplers = a.samplers;
  for (const auto& s : spec.samplers) make_sampler(s);  // unknown names fail before any work
  spec.steps = a.steps;
  spec.n = a.n;
  spec.seed = a.seed;
  spec.dtype = parse_dtype(a.dtype);
  spec.grid = a.grid.empty() ? default_grid(*sde->schedule()) : parse_grid(a.grid);
  const GaussianMixture mixture = load_mixture(a.model);
  const MomentsReport rep = compare_moments(mixture, *sde, spec);
  out << "Model " << a.model << " (D = " << mixture.dim() << "), SDE " << a.sde << ", " << a.steps
      << " steps (" << grid_name(spec.grid) << "), n = " << a.n << ", seed " << a.seed << ", "
      << a.dtype << "; t_end = " << rep.t_end << "\n";
  out << "Errors of the sample moments against the exact marginal p(t_end):\n\n";
  out << "| sampler          |  NFE | mean err | rel cov err | seconds |\n";
  out << "|------------------|-----:|---------:|------------:|--------:|\n";
  auto row = [&](const MomentsRow& r, bool timed) {
    out << "| " << std::left << std::setw(16) << r.sampler << " | " << std::right << std::setw(4)
        << r.nfe << " | " << std::setw(8) << fmt(r.mean_err, 3) << " | " << std::setw(11)
        << fmt(r.cov_err, 3) << " | " << std::setw(7)
        << (timed ? fmt(r.seconds, 3) : std::string("-")) << " |\n";
  };
  for (const auto& r : rep.rows) row(r, true);
  row(rep.floor, false);
  out << "\n'exact samples' is the floor: the same statistics for " << a.n
      << " exact draws of p(t_end); a sampler at that level is indistinguishable from exact at "
         "this n.\n";
  return 0;
}

}  // namespace

int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CLI::App app{"sdekit: diffusion sampling as numerical SDE/ODE solving"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");

  app.add_subcommand("list", "List SDEs, time grids, samplers (order, NFE per step), models");

  SampleArgs sa;
  auto* sample =
      app.add_subcommand("sample", "Sample a model with one sampler; write the samples as .npy");
  sample->add_option("--model", sa.model, "ring2d | gmm64 | gmm:FILE.json")->capture_default_str();
  sample->add_option("--sde", sa.sde, "SDE / schedule (see `sdekit list`)")->capture_default_str();
  add_sampler_options(sample, sa.s);
  sample->add_option("--steps", sa.steps, "Number of steps")->capture_default_str();
  sample->add_option("--grid", sa.grid, "Time grid (default: karras for edm, uniform-t otherwise)");
  auto* n_opt = sample->add_option("--n", sa.n, "Number of samples (ignored with --x-init)")
                    ->capture_default_str();
  sample->add_option("--seed", sa.seed, "Seed of the prior draw and the sampler noise")
      ->capture_default_str();
  sample->add_option("--x-init", sa.x_init,
                     "Initial points x_T, a .npy array [n, D] (float32/float64)");
  sample->add_option("--t-end", sa.t_end, "End time in (0, T) (default: the SDE's)");
  sample->add_option("--dtype", sa.dtype, "float32 | float64")->capture_default_str();
  sample->add_flag("--brownian", sa.brownian,
                   "Draw the noise from a virtual Brownian tree (same path at any step count)");
  sample->add_option("--out", sa.out, "Output .npy file for the samples [n, D]");

  EncodeArgs ea;
  auto* encode = app.add_subcommand(
      "encode", "Integrate the PF-ODE from data to noise (DDIM inversion); report the round trip");
  encode->add_option("--model", ea.model, "ring2d | gmm64 | gmm:FILE.json")->capture_default_str();
  encode->add_option("--sde", ea.sde, "SDE / schedule")->capture_default_str();
  add_sampler_options(encode, ea.s);
  encode->add_option("--steps", ea.steps, "Number of steps")->capture_default_str();
  encode->add_option("--grid", ea.grid, "Time grid (default: karras for edm, uniform-t otherwise)");
  encode->add_option("--x0", ea.x0,
                     "Points to encode, a .npy array [n, D] (default: exact samples at --t-start)");
  encode->add_option("--n", ea.n, "Number of exact samples to encode without --x0")
      ->capture_default_str();
  encode->add_option("--seed", ea.seed, "Seed of those samples")->capture_default_str();
  encode->add_option("--t-start", ea.t_start, "Start time in (0, T) (default: the SDE's end time)");
  encode->add_option("--dtype", ea.dtype, "float32 | float64")->capture_default_str();
  encode->add_option("--out", ea.out, "Output .npy file for x_T [n, D]");

  MomentsArgs ma;
  auto* moments = app.add_subcommand(
      "moments", "Sample a mixture with several samplers; compare moments with exact ones");
  moments->add_option("--model", ma.model, "ring2d | gmm64 | gmm:FILE.json")->capture_default_str();
  moments->add_option("--sde", ma.sde, "SDE / schedule")->capture_default_str();
  moments->add_option("--samplers", ma.samplers, "Samplers, comma separated (default: all)")
      ->delimiter(',');
  moments->add_option("--grid", ma.grid,
                      "Time grid (default: karras for edm, uniform-t otherwise)");
  moments->add_option("--steps", ma.steps, "Number of steps")->capture_default_str();
  moments->add_option("--n", ma.n, "Number of samples")->capture_default_str();
  moments->add_option("--seed", ma.seed, "Seed")->capture_default_str();
  moments->add_option("--dtype", ma.dtype, "float32 | float64")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e, out, err);
  }
  try {
    if (app.got_subcommand("list")) {
      cmd_list(out);
      return 0;
    }
    if (app.got_subcommand("sample")) {
      if (sa.steps < 1)
        throw std::invalid_argument("--steps must be >= 1, got " + std::to_string(sa.steps));
      if (sa.n < 1) throw std::invalid_argument("--n must be >= 1, got " + std::to_string(sa.n));
      return cmd_sample(sa, n_opt->count() > 0, out);
    }
    if (app.got_subcommand("encode")) {
      if (ea.steps < 1)
        throw std::invalid_argument("--steps must be >= 1, got " + std::to_string(ea.steps));
      return cmd_encode(ea, out);
    }
    if (app.got_subcommand("moments")) {
      if (ma.steps < 1)
        throw std::invalid_argument("--steps must be >= 1, got " + std::to_string(ma.steps));
      if (ma.n < 2) throw std::invalid_argument("--n must be >= 2, got " + std::to_string(ma.n));
      return cmd_moments(ma, out);
    }
  } catch (const std::invalid_argument& e) {
    err << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    err << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace sdekit
