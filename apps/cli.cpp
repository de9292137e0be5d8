#include "apps/cli.hpp"

#include <unistd.h>

#include <c10/util/Exception.h>
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <ostream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>
#include "apps/distill_cmd.hpp"
#include "apps/plot.hpp"
#include "apps/runtime.hpp"
#include "datasets/idx.hpp"
#include "experiments/converge.hpp"
#include "experiments/fid_table.hpp"
#include "experiments/frechet.hpp"
#include "experiments/moments.hpp"
#include "experiments/npy_io.hpp"
#include "experiments/stats_io.hpp"
#include "models/builtin.hpp"
#include "models/resources.hpp"
#include "networks/classifier.hpp"
#include "networks/loader.hpp"
#include "networks/module_check.hpp"
#include "networks/train.hpp"
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

// The first line of a message, trimmed (LibTorch and CLI11 append context on further lines).
std::string one_line(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
  return line;
}

// An error message as printed: each line at most 300 characters and at most 30 lines (values
// echoed from hostile input can be megabytes long).
std::string clipped(const std::string& text) {
  std::istringstream in(text);
  std::string out;
  int lines = 0;
  for (std::string line; std::getline(in, line); ++lines) {
    if (lines == 30) {
      out += "\n  ...";
      break;
    }
    for (char& c : line)
      if (static_cast<unsigned char>(c) < 0x20 && c != '\t') c = '?';  // no control characters
    if (line.size() > 300)
      line =
          line.substr(0, 300) + "... (" + std::to_string(line.size() - 300) + " more characters)";
    out += (lines ? "\n" : "") + line;
  }
  return out;
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

// The largest step count or NFE budget a command takes.
constexpr int64_t kMaxSteps = 10'000'000;

void check_count(const std::string& flag, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo)
    throw std::invalid_argument(flag + " must be >= " + std::to_string(lo) + ", got " +
                                std::to_string(v));
  if (v > hi)
    throw std::invalid_argument(flag + " must be <= " + std::to_string(hi) + ", got " +
                                std::to_string(v));
}

// "cpu", "cuda" or "cuda:K", and CUDA only where LibTorch has it.
void check_device(const std::string& device) {
  const bool cuda = device == "cuda" || device.rfind("cuda:", 0) == 0;
  if (device != "cpu" && !cuda)
    throw std::invalid_argument("--device: unknown device '" + device +
                                "'; valid: cpu, cuda, cuda:K");
  if (cuda && !at::hasCUDA())
    throw std::invalid_argument("--device " + device +
                                ": CUDA is not available (this LibTorch has no CUDA, or no GPU is "
                                "visible)");
}

// An output file is checked before any work without creating it: its folder must exist and be
// writable, and an existing file must be a writable regular file.
void check_output_file(const std::string& flag, const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::error_code ec;
  if (fs::is_directory(p, ec))
    throw std::invalid_argument(flag + " '" + path + "': is a directory, not a file");
  if (!fs::is_directory(dir, ec))
    throw std::invalid_argument(flag + " '" + path + "': cannot open for writing (the folder '" +
                                dir.string() + "' does not exist)");
  if (::access(dir.c_str(), W_OK) != 0 || (fs::exists(p, ec) && ::access(p.c_str(), W_OK) != 0))
    throw std::invalid_argument(flag + " '" + path + "': cannot open for writing (permission)");
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
  out << "  " << std::left << std::setw(16) << "net:FILE.pt"
      << "a network trained by `sdekit train` (its model.pt)\n";
  out << "  " << std::left << std::setw(16) << "fmnist"
      << "the committed class-conditional Fashion-MNIST U-Net (--class, --guidance)\n";
  out << "  " << std::left << std::setw(16) << "torchscript:F"
      << "a TorchScript module forward(x, t) or forward(x, t, y) (--param, --event-shape)\n";
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

  // Checks what the flags alone can tell; `nfe_given`: --nfe was on the command line.
  void check(bool nfe_given) const {
    if (nfe_given) check_count("--nfe", nfe, 1, kMaxSteps);
    check_count("--max-steps", max_steps, 1, kMaxSteps);
    if (!(rtol > 0) || !(atol > 0) || !std::isfinite(rtol) || !std::isfinite(atol))
      throw std::invalid_argument("--rtol and --atol must be finite and > 0");
  }

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

std::vector<double> parse_number_list(const std::string& text, const std::string& option);

// Options of learned models, shared by the commands that load a model.
struct ModelArgs {
  std::string param;        // torchscript
  std::string event_shape;  // torchscript: "2" or "1,28,28"
  int64_t label = -1;
  double guidance = 0;
  std::string device = "cpu";

  ModelOptions options() const {
    ModelOptions o;
    o.param = param;
    if (!event_shape.empty())
      for (double v : parse_number_list(event_shape, "--event-shape")) {
        if (v < 1 || v != std::floor(v))
          throw std::invalid_argument("--event-shape: sizes must be positive integers, got " +
                                      fmt(v));
        o.event_shape.push_back(static_cast<int64_t>(v));
      }
    o.label = label;
    if (!std::isfinite(guidance))
      throw std::invalid_argument("--guidance must be finite, got " + fmt(guidance));
    o.guidance = guidance;
    check_device(device);
    o.device = device;
    return o;
  }
};

void add_model_options(CLI::App* c, ModelArgs& m) {
  c->add_option("--param", m.param, "torchscript models: eps | x0 | v | score | denoiser");
  c->add_option("--event-shape", m.event_shape,
                "torchscript models: one sample's shape, e.g. 2 or 1,28,28");
  c->add_option("--class", m.label,
                "Class-conditional models: a class, -1 for balanced classes, K for none")
      ->capture_default_str();
  c->add_option("--guidance", m.guidance,
                "Classifier-free guidance weight w (0: none; w != 0 doubles the NFE)")
      ->capture_default_str();
  c->add_option("--device", m.device, "cpu | cuda (learned models)")->capture_default_str();
}

// The model of `sample` and `encode` with the checks its flags need; D: values per sample.
LoadedModel load_cli_model(const std::string& spec, const SchedulePtr& kernel, const ModelArgs& m,
                           int64_t& D) {
  LoadedModel lm = load_model(spec, kernel, m.options());
  if (lm.mixture && m.device != "cpu")
    throw std::invalid_argument("--device " + m.device + ": model '" + spec +
                                "' is analytic and runs on the CPU; --device applies to learned "
                                "models");
  D = 1;
  for (int64_t v : lm.event_shape) D *= v;
  return lm;
}

struct SampleArgs {
  std::string model = "ring2d";
  std::string sde = "vp-linear";
  SamplerArgs s;
  ModelArgs m;
  std::string grid;  // empty: the schedule's default
  int steps = 20;
  int64_t n = 1000;
  uint64_t seed = 0;
  std::string x_init;
  double t_end = -1;  // < 0: the SDE's default
  std::string dtype = "float32";
  bool brownian = false;
  std::string out;
  std::string plot;
  bool n_given = false, nfe_given = false, t_end_given = false;
};

int cmd_sample(const SampleArgs& a, std::ostream& out) {
  check_count("--steps", a.steps, 1, kMaxSteps);
  a.s.check(a.nfe_given);
  if (!a.n_given || a.x_init.empty())
    check_count("--n", a.n, 1, std::numeric_limits<int64_t>::max());
  // Validate everything before any work.
  const SDEPtr sde = make_sde(a.sde);
  const SchedulePtr kernel = sde->schedule();
  const auto sampler = make_sampler(a.s.sampler, a.s.options());
  int64_t D = 0;
  const LoadedModel lm = load_cli_model(a.model, kernel, a.m, D);
  SampleSpec spec;
  spec.options = at::TensorOptions().dtype(parse_dtype(a.dtype));
  spec.steps = a.nfe_given ? sampler->steps_for_nfe(a.s.nfe) : a.steps;
  if (!a.grid.empty()) spec.grid = parse_grid(a.grid);
  spec.t_end = a.t_end_given ? a.t_end : -1.0;
  spec.n = a.n;
  spec.event_shape = lm.event_shape;
  spec.seed = a.seed;
  const Interval d = sde->domain();
  if (a.t_end_given && !(a.t_end > d.lo && a.t_end < d.hi)) {
    std::ostringstream os;
    os << "--t-end must lie in (" << d.lo << ", " << d.hi << ") for --sde " << a.sde << ", got "
       << a.t_end;
    throw std::invalid_argument(os.str());
  }
  spec_grid(*sde, spec);  // grid errors before any work
  if (a.brownian) {
    if (!sampler->stochastic())
      throw std::invalid_argument("--brownian: sampler '" + a.s.sampler +
                                  "' is deterministic and draws no noise");
    if (!sampler->uses_brownian_path())
      throw std::invalid_argument("--brownian: sampler '" + a.s.sampler +
                                  "' draws Langevin noise, which is not a Brownian increment; it "
                                  "cannot take its noise from a Brownian path");
    const double t_end = a.t_end_given ? a.t_end : sde->default_t_end();
    spec.brownian =
        std::make_shared<VirtualBrownianTree>(t_end, d.hi, a.seed, 1e-6 * (d.hi - t_end));
  }
  if (!a.x_init.empty()) {
    spec.x_init = read_npy(a.x_init);
    require_finite(spec.x_init, "--x-init '" + a.x_init + "'");
    std::vector<int64_t> want = {spec.x_init.dim() > 0 ? spec.x_init.size(0) : 0};
    want.insert(want.end(), lm.event_shape.begin(), lm.event_shape.end());
    if (spec.x_init.dim() == 2 && spec.x_init.size(1) == D) spec.x_init = spec.x_init.reshape(want);
    if (spec.x_init.sizes() != at::IntArrayRef(want))
      throw std::invalid_argument("--x-init '" + a.x_init + "': expected shape [n, " +
                                  std::to_string(D) + "] for model " + a.model + ", got " +
                                  fmt_shape(spec.x_init));
    if (spec.x_init.size(0) < 1)
      throw std::invalid_argument("--x-init '" + a.x_init + "': holds no rows");
    if (a.n_given && spec.x_init.size(0) != a.n)
      throw std::invalid_argument("--n " + std::to_string(a.n) + " disagrees with the " +
                                  std::to_string(spec.x_init.size(0)) + " rows of --x-init '" +
                                  a.x_init + "'");
  }
  const int64_t side = static_cast<int64_t>(std::lround(std::sqrt(double(D))));
  const bool scatter = D == 2;
  if (!a.plot.empty() && !scatter && side * side != D)
    throw std::invalid_argument(
        "--plot: needs 2-D samples (a scatter) or square images (D = k^2, a PNG grid); model " +
        a.model + " has D = " + std::to_string(D));
  if (!a.out.empty()) check_output_file("--out", a.out);  // before sampling, not after
  if (!a.plot.empty()) check_output_file("--plot", a.plot);
  {
    const int64_t rows = spec.x_init.defined() ? spec.x_init.size(0) : a.n;
    const double elem = spec.options.dtype() == at::kDouble ? 8.0 : 4.0;
    // The batch with a sampler's buffers and the model's temporaries, and the time grid.
    require_memory("--n " + std::to_string(rows),
                   64.0 * elem * double(rows) * double(D) + 32.0 * double(spec.steps));
  }

  const auto t0 = std::chrono::steady_clock::now();
  const SampleResult res = sample(*sampler, *lm.model, *sde, spec);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!a.out.empty()) write_npy(a.out, res.x.reshape({res.x.size(0), D}));

  const double t_end = a.t_end_given ? a.t_end : sde->default_t_end();
  out << "sampled " << res.x.size(0) << " x " << D << " (" << a.dtype << ") from " << lm.description
      << " with " << sampler->name() << " on " << a.sde << ", " << spec.steps << " steps ("
      << grid_name(spec.grid.value_or(default_grid(*kernel))) << "), t: " << d.hi << " -> " << t_end
      << ", NFE " << res.nfe << ", " << fmt(secs, 3) << " s\n";
  if (lm.mixture) {
    const at::Tensor m = res.x.to(at::kDouble).mean(0);
    const at::Tensor m_exact = lm.mixture->mean(kernel->alpha(t_end));
    out << "mean error ||m - m_exact|| = " << fmt((m - m_exact).norm().item<double>()) << "\n";
  }
  if (!a.out.empty()) out << "wrote " << a.out << " [n, " << D << "]\n";
  if (!a.plot.empty()) {
    if (scatter && !lm.mixture) {
      // No exact density: contours of a Gaussian kernel density estimate of the samples
      // (Scott's bandwidth per axis).
      const at::Tensor xs = res.x.to(at::kCPU, at::kDouble).contiguous();
      const at::Tensor keep = at::isfinite(xs).all(1);
      const at::Tensor pts = xs.index({keep}).contiguous();
      const int64_t m = pts.size(0);
      const double bw = std::pow(static_cast<double>(std::max<int64_t>(m, 2)), -1.0 / 6.0);
      const double hx = std::max(1e-12, bw * pts.select(1, 0).std().item<double>()),
                   hy = std::max(1e-12, bw * pts.select(1, 1).std().item<double>());
      const double* p = pts.data_ptr<double>();
      auto log_kde = [&](double u, double v) {
        double sum = 0.0;
        for (int64_t i = 0; i < m; ++i) {
          const double du = (u - p[2 * i]) / hx, dv = (v - p[2 * i + 1]) / hy;
          sum += std::exp(-0.5 * (du * du + dv * dv));
        }
        return std::log(sum / (static_cast<double>(m) * 2 * M_PI * hx * hy));
      };
      out << plot_scatter_density(a.plot,
                                  std::string(sampler->name()) + ", NFE " +
                                      std::to_string(res.nfe) +
                                      ": samples over their kernel density estimate",
                                  res.x, log_kde)
                 .message
          << "\n";
    } else if (scatter) {
      out << plot_scatter_density(a.plot,
                                  std::string(sampler->name()) + ", NFE " +
                                      std::to_string(res.nfe) + ": samples over log p(t_end)",
                                  res.x, *lm.mixture, kernel->alpha(t_end), kernel->sigma(t_end))
                 .message
          << "\n";
    } else {
      // Square images: the first 64 samples. Learned image models work in [-1, 1]; analytic
      // ones are shown over the samples' own range.
      const at::Tensor x = res.x.narrow(0, 0, std::min<int64_t>(64, res.x.size(0)));
      double lo = -1, hi = 1;
      if (lm.mixture) {
        lo = x.min().item<double>();
        hi = std::max(lo + 1e-12, x.max().item<double>());
      }
      write_image_grid_png(a.plot, x.reshape({x.size(0), 1, side, side}), 0, 2, lo, hi);
      out << "wrote " << a.plot << " (" << x.size(0) << " samples as " << side << "x" << side
          << " images, grey levels from " << fmt(lo) << " to " << fmt(hi) << ")\n";
    }
  }
  return 0;
}

// ------------------------------------------------------------------------------------------
// sdekit encode

struct EncodeArgs {
  std::string model = "ring2d";
  std::string sde = "vp-linear";
  SamplerArgs s;
  ModelArgs m;
  std::string grid;
  int steps = 50;
  std::string x0;
  int64_t n = 1000;
  uint64_t seed = 0;
  double t_start = -1;  // < 0: the SDE's default end time
  std::string dtype = "float64";
  std::string out;
  bool nfe_given = false, t_start_given = false;
};

int cmd_encode(const EncodeArgs& a, std::ostream& out) {
  check_count("--steps", a.steps, 1, kMaxSteps);
  a.s.check(a.nfe_given);
  const SDEPtr sde = make_sde(a.sde);
  const SchedulePtr kernel = sde->schedule();
  const auto sampler = make_sampler(a.s.sampler, a.s.options());
  if (sampler->stochastic())
    throw std::invalid_argument("--sampler " + a.s.sampler +
                                " is stochastic; encoding needs a deterministic one");
  int64_t D = 0;
  const LoadedModel lm = load_cli_model(a.model, kernel, a.m, D);
  const Interval d = sde->domain();
  SampleSpec spec;
  spec.options = at::TensorOptions().dtype(parse_dtype(a.dtype));
  spec.steps = a.nfe_given ? sampler->steps_for_nfe(a.s.nfe) : a.steps;
  if (!a.grid.empty()) spec.grid = parse_grid(a.grid);
  spec.t_end = a.t_start_given ? a.t_start : sde->default_t_end();
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
    if (x0.dim() != 2 || x0.size(1) != D || x0.size(0) < 1)
      throw std::invalid_argument("--x0 '" + a.x0 + "': expected shape [n, " + std::to_string(D) +
                                  "] for model " + a.model + ", got " + fmt_shape(x0));
    require_finite(x0, "--x0 '" + a.x0 + "'");
    x0 = x0.to(spec.options);
  } else {
    if (!lm.mixture)
      throw std::invalid_argument("model '" + a.model +
                                  "' has no exact samples to encode; give the points with --x0");
    check_count("--n", a.n, 1, std::numeric_limits<int64_t>::max());
    require_memory("--n " + std::to_string(a.n), 64.0 * 8.0 * double(a.n) * double(D));
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(a.seed);
    x0 = lm.mixture->sample(a.n, kernel->alpha(spec.t_end), kernel->sigma(spec.t_end), g,
                            spec.options);
  }
  if (!a.out.empty()) check_output_file("--out", a.out);
  std::vector<int64_t> shape = {x0.size(0)};
  shape.insert(shape.end(), lm.event_shape.begin(), lm.event_shape.end());
  x0 = x0.reshape(shape);
  SampleRequest req;
  req.model = lm.model.get();
  req.sde = sde.get();
  req.times = up;
  req.x_init = x0;
  const SampleResult enc = sampler->run(req);
  if (!a.out.empty()) write_npy(a.out, enc.x.reshape({enc.x.size(0), D}));
  req.times = down;
  req.x_init = enc.x;
  const SampleResult dec = sampler->run(req);
  const at::Tensor diff = (dec.x - x0).to(at::kDouble);
  out << "encoded " << x0.size(0) << " x " << D << " from t = " << spec.t_end << " to T = " << d.hi
      << " with " << sampler->name() << " (" << enc.steps << " steps, NFE " << enc.nfe << ")\n";
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

// ------------------------------------------------------------------------------------------
// Progress on stderr: one line rewritten in place, only when stderr is a terminal.

class ProgressLine {
 public:
  ProgressLine(std::ostream& err, bool quiet)
      : err_(err), on_(!quiet && &err == &std::cerr && ::isatty(STDERR_FILENO)) {}
  ~ProgressLine() { finish(); }
  bool on() const { return on_; }
  void update(std::size_t done, std::size_t total, const std::string& what, double elapsed,
              double eta) {
    if (!on_) return;
    std::ostringstream os;
    os << "\r[" << done << "/" << total << "] " << what << "  " << clock(elapsed) << " elapsed";
    if (eta >= 0) os << ", ETA " << clock(eta);
    std::string line = os.str();
    if (line.size() < width_) line += std::string(width_ - line.size(), ' ');
    width_ = line.size();
    err_ << line << std::flush;
    shown_ = true;
  }
  void finish() {
    if (on_ && shown_) err_ << "\r" << std::string(width_, ' ') << "\r" << std::flush;
    shown_ = false;
  }

 private:
  static std::string clock(double s) {
    const long t = std::lround(std::max(0.0, s));
    std::ostringstream os;
    os << t / 60 << ":" << std::setw(2) << std::setfill('0') << t % 60;
    return os.str();
  }
  std::ostream& err_;
  bool on_;
  bool shown_ = false;
  std::size_t width_ = 0;
};

// ------------------------------------------------------------------------------------------
// sdekit converge

struct ConvergeArgs {
  std::string spec_file;
  ConvergeSpec spec;
  std::string nfe_list, tol_list;
  std::string out = "out/converge";
  bool fresh = false, quiet = false, json = false;
};

std::vector<double> parse_number_list(const std::string& text, const std::string& option) {
  std::vector<double> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    std::size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size())
      throw std::invalid_argument(option + ": '" + item +
                                  "' is not a number (expected a comma "
                                  "separated list, e.g. 5,10,20)");
    out.push_back(v);
  }
  if (out.empty()) throw std::invalid_argument(option + ": the list is empty");
  return out;
}

std::vector<Series> converge_series(const ConvergeReport& r, bool stochastic) {
  std::vector<Series> out;
  for (const auto& s : r.summaries) {
    if ((s.kind == "sde") != stochastic || s.nfe.empty()) continue;
    out.push_back({s.sampler, s.nfe, s.rms});
  }
  return out;
}

int cmd_converge(ConvergeArgs& a, const std::vector<const CLI::Option*>& given, std::ostream& out,
                 std::ostream& err) {
  ConvergeSpec spec;
  if (!a.spec_file.empty()) {
    spec = converge_spec_from_json(read_text_file(a.spec_file, "--spec"), a.spec_file);
  }
  // Flags given on the command line override the spec file.
  auto was_given = [&](const std::string& name) {
    for (const auto* o : given)
      if (o->get_name() == name && o->count() > 0) return true;
    return false;
  };
  if (was_given("--model")) spec.model = a.spec.model;
  if (was_given("--sde")) spec.sde = a.spec.sde;
  if (was_given("--samplers")) spec.samplers = a.spec.samplers;
  if (was_given("--n")) spec.n = a.spec.n;
  if (was_given("--seed")) spec.seed = a.spec.seed;
  if (was_given("--dtype")) spec.dtype = a.spec.dtype;
  if (was_given("--t-end")) spec.t_end = a.spec.t_end;
  if (was_given("--grid")) spec.grid = a.spec.grid;
  if (was_given("--ref-tol")) spec.ref_tol = a.spec.ref_tol;
  if (was_given("--sde-ref-steps")) spec.sde_ref_steps = a.spec.sde_ref_steps;
  if (was_given("--param")) spec.param = a.spec.param;
  if (was_given("--event-shape")) spec.event_shape = a.spec.event_shape;
  if (was_given("--t-end") && spec.t_end == -1.0)
    throw std::invalid_argument("--t-end must lie inside the SDE's time domain, got -1");
  if (was_given("--nfe")) {
    spec.nfe.clear();
    for (double v : parse_number_list(a.nfe_list, "--nfe")) {
      if (v != std::floor(v) || v < 1 || v > 1e7)
        throw std::invalid_argument("--nfe: every NFE must be an integer >= 1, got " + fmt(v));
      spec.nfe.push_back(static_cast<int>(v));
    }
  }
  if (was_given("--tolerances")) spec.tolerances = parse_number_list(a.tol_list, "--tolerances");
  validate(spec);

  ProgressLine line(err, a.quiet);
  const ConvergeReport rep = run_converge(spec, a.out, a.fresh, [&](const ConvergeProgress& p) {
    line.update(p.done, p.total, p.cell.empty() ? std::string("done") : p.cell, p.elapsed, p.eta);
  });
  line.finish();
  write_converge_tables(rep, a.out);

  std::vector<std::string> plot_notes;
  const std::string title = rep.spec.model + ", " + rep.spec.sde + ", " + rep.grid + " grid";
  if (auto s = converge_series(rep, false); !s.empty()) {
    const PlotResult p =
        plot_loglog((std::filesystem::path(a.out) / "error_vs_nfe.png").string(),
                    "RMS error vs NFE (PF-ODE): " + title, "NFE", "RMS error vs reference", s,
                    {1, 2, 3}, rep.ode_reference.error_estimate);
    plot_notes.push_back(p.message);
  }
  if (auto s = converge_series(rep, true); !s.empty()) {
    const PlotResult p = plot_loglog(
        (std::filesystem::path(a.out) / "strong_error_vs_nfe.png").string(),
        "Strong RMS error vs NFE (reverse SDE, same Brownian path): " + title, "NFE",
        "RMS error vs fine SRA solution", s, {0.5, 1, 1.5}, rep.sde_reference.error_estimate);
    plot_notes.push_back(p.message);
  }

  if (a.json) {
    out << converge_report_json(rep) << "\n";
    return 0;
  }
  out << converge_protocol(rep) << "\n" << converge_markdown(rep) << "\n";
  out << "Cells: " << rep.computed << " computed, " << rep.resumed << " reused from " << a.out
      << "/results.jsonl.\n";
  out << "Wrote " << a.out << "/{results.jsonl, results.csv, results.md, spec.json}\n";
  for (const auto& n : plot_notes) out << n << "\n";
  return 0;
}

// ------------------------------------------------------------------------------------------
// sdekit fid-table

struct FidArgs {
  std::string spec_file;
  FidTableSpec spec;
  std::string nfe_list;
  std::string out = "out/fid-table";
  bool fresh = false, quiet = false, json = false;
};

int cmd_fid_table(FidArgs& a, const CLI::App& cmd, std::ostream& out, std::ostream& err) {
  FidTableSpec spec;
  if (!a.spec_file.empty()) {
    spec = fid_spec_from_json(read_text_file(a.spec_file, "--spec"), a.spec_file);
  }
  auto given = [&](const std::string& name) { return cmd.get_option(name)->count() > 0; };
  if (given("--model")) spec.model = a.spec.model;
  if (given("--sde")) spec.sde = a.spec.sde;
  if (given("--samplers")) spec.samplers = a.spec.samplers;
  if (given("--n")) spec.n = a.spec.n;
  if (given("--seed")) spec.seed = a.spec.seed;
  if (given("--dtype")) spec.dtype = a.spec.dtype;
  if (given("--grid")) spec.grid = a.spec.grid;
  if (given("--t-end")) spec.t_end = a.spec.t_end;
  if (given("--features")) spec.features = a.spec.features;
  if (given("--reference")) spec.reference = a.spec.reference;
  if (given("--n-ref")) spec.n_ref = a.spec.n_ref;
  if (given("--kid-subsets")) spec.kid_subsets = a.spec.kid_subsets;
  if (given("--kid-subset-size")) spec.kid_subset_size = a.spec.kid_subset_size;
  if (given("--guidance")) spec.guidance = a.spec.guidance;
  if (given("--param")) spec.param = a.spec.param;
  if (given("--event-shape")) spec.event_shape = a.spec.event_shape;
  if (given("--t-end") && spec.t_end == -1.0)
    throw std::invalid_argument("--t-end must lie inside the SDE's time domain, got -1");
  if (given("--nfe")) {
    spec.nfe.clear();
    for (double v : parse_number_list(a.nfe_list, "--nfe")) {
      if (v != std::floor(v) || v < 1 || v > 1e7)
        throw std::invalid_argument("--nfe: every NFE must be an integer >= 1, got " + fmt(v));
      spec.nfe.push_back(static_cast<int>(v));
    }
  }
  validate(spec);

  ProgressLine line(err, a.quiet);
  const FidTableReport rep = run_fid_table(spec, a.out, a.fresh, [&](const FidProgress& p) {
    line.update(p.done, p.total, p.cell.empty() ? std::string("done") : p.cell, p.elapsed, p.eta);
  });
  line.finish();
  write_fid_tables(rep, a.out);
  std::vector<Series> series;
  for (const auto& name : rep.spec.samplers) {
    Series s{name, {}, {}};
    for (const auto& c : rep.cells)
      if (c.sampler == name && c.failure.empty() && c.nfe > 0) {
        s.x.push_back(static_cast<double>(c.nfe));
        s.y.push_back(c.fd);
      }
    if (!s.x.empty()) series.push_back(s);
  }
  std::string plot_note;
  if (!series.empty())
    plot_note =
        plot_loglog((std::filesystem::path(a.out) / "fd_vs_nfe.png").string(),
                    "Frechet distance vs NFE (" + rep.feature_space + " features)", "NFE",
                    "Frechet distance", series, {}, std::isnan(rep.floor_fd) ? 0.0 : rep.floor_fd)
            .message;
  if (a.json) {
    out << fid_report_json(rep) << "\n";
    return 0;
  }
  out << fid_protocol(rep) << "\n" << fid_markdown(rep) << "\n";
  out << "Cells: " << rep.computed << " computed, " << rep.resumed << " reused from " << a.out
      << "/results.jsonl.\n";
  out << "Wrote " << a.out
      << "/{results.jsonl, results.csv, results.md, spec.json, reference_stats.npz, stats/}\n";
  if (!plot_note.empty()) out << plot_note << "\n";
  return 0;
}

// ------------------------------------------------------------------------------------------
// sdekit fd

int cmd_fd(const std::string& a, const std::string& b, std::ostream& out) {
  const StatsFile fa = read_stats_npz(a), fb = read_stats_npz(b);
  check_covariance(fa, a);
  check_covariance(fb, b);
  if (fa.mu.size(0) != fb.mu.size(0))
    throw std::invalid_argument("'" + a + "' has d = " + std::to_string(fa.mu.size(0)) + ", '" + b +
                                "' has d = " + std::to_string(fb.mu.size(0)));
  out << std::setprecision(10) << frechet_distance(fa.mu, fa.sigma, fb.mu, fb.sigma) << "\n";
  return 0;
}

// ------------------------------------------------------------------------------------------
// sdekit train, sdekit classifier

struct TrainArgs {
  TrainConfig c;
  std::string param = "eps";
  std::string channel_mult = "1,2,2";
  std::string arch;  // empty: unet for images, mlp otherwise
  std::string out = "out/train";
  bool resume = false, quiet = false;
  std::string command;
};

int cmd_train(TrainArgs& a, const CLI::App& cmd, std::ostream& out, std::ostream& err) {
  TrainConfig c = a.c;
  c.net.param = parse_param(a.param);
  const bool images = c.data == "fashion-mnist";
  c.net.arch = a.arch.empty() ? (images ? "unet" : "mlp") : a.arch;
  if (images) {
    c.net.event_shape = {1, 28, 28};
  } else if (c.data.rfind("mixture:", 0) == 0) {
    c.net.event_shape = {load_mixture(c.data.substr(8)).dim()};
  } else {
    c.net.event_shape = {2};
  }
  c.net.channel_mult.clear();
  for (double v : parse_number_list(a.channel_mult, "--channel-mult"))
    c.net.channel_mult.push_back(static_cast<int64_t>(v));
  if (cmd.get_option("--width")->count() == 0 && c.net.arch == "unet") c.net.width = 32;
  if (cmd.get_option("--depth")->count() == 0 && c.net.arch == "unet") c.net.depth = 2;
  c.validate();
  const bool quiet = a.quiet;
  const TrainResult r = train(c, a.out, a.resume, [&](const TrainProgress& p) {
    if (!quiet)
      err << "step " << p.step << "/" << p.steps << "  loss " << fmt(p.loss, 5) << "  "
          << fmt(p.steps_per_second, 3) << " steps/s  " << fmt(p.elapsed, 4) << " s\n"
          << std::flush;
  });
  const std::filesystem::path info = std::filesystem::path(a.out) / "train.json";
  if (r.steps == c.steps && std::filesystem::exists(info)) {  // record how it was made
    std::ifstream in(info);
    nlohmann::json j = nlohmann::json::parse(in);
    j["command"] = a.command;
    in.close();
    std::ofstream(info) << j.dump(2) << "\n";
  }
  out << "trained " << r.ema->name() << " on " << c.data << " (" << c.sde << ", "
      << param_name(c.net.param) << " target"
      << (c.net.num_classes > 0 ? ", class-conditional" : "") << "): steps " << r.resumed_from
      << " -> " << r.steps << " in " << fmt(r.seconds, 4) << " s, final loss "
      << fmt(r.final_loss, 5) << "\n";
  out << "wrote " << a.out << "/checkpoint.pt"
      << (r.steps == c.steps ? ", " + a.out + "/model.pt (EMA weights; --model net:" + a.out +
                                   "/model.pt), " + a.out + "/train.json"
                             : std::string())
      << "\n";
  return 0;
}

struct ClassifierArgs {
  ClassifierTraining c;
  std::string out = "out/classifier.pt";
  std::string stats;
  bool quiet = false;
};

int cmd_classifier(const ClassifierArgs& a, std::ostream& out, std::ostream& err) {
  a.c.validate(60000);  // the training split's size; checked again against the data read
  check_output_file("--out", a.out);
  if (!a.stats.empty()) check_output_file("--stats", a.stats);
  const ImageDataset train_set = load_fashion_mnist("train"), test_set = load_fashion_mnist("test");
  const auto t0 = std::chrono::steady_clock::now();
  const auto clf =
      train_classifier(a.c, train_set.images, train_set.labels, [&](int64_t e, double loss) {
        if (!a.quiet)
          err << "epoch " << e << "/" << a.c.epochs << "  loss " << fmt(loss, 4) << "\n"
              << std::flush;
      });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double acc = clf->accuracy(test_set.images, test_set.labels);
  clf->save(a.out);
  out << "classifier: test accuracy " << fmt(100 * acc, 4) << "% on " << test_set.images.size(0)
      << " Fashion-MNIST test images after " << a.c.epochs << " epochs (" << fmt(secs, 3)
      << " s); wrote " << a.out << "\n";
  if (!a.stats.empty()) {
    GaussianStats st;
    st.add(clf->features(test_set.images));
    write_stats_npz(a.stats, st);
    out << "wrote " << a.stats << " (features of the " << st.count
        << " test images, d = " << st.dim() << ")\n";
  }
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
  sample->add_option("--model", sa.model, model_spec_help())->capture_default_str();
  sample->add_option("--sde", sa.sde, "SDE / schedule (see `sdekit list`)")->capture_default_str();
  add_sampler_options(sample, sa.s);
  add_model_options(sample, sa.m);
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
  sample->add_option(
      "--plot", sa.plot,
      "PNG: 2-D samples over the density's contours (a mixture's exact density, else "
      "a kernel density estimate; gnuplot), or square-image "
      "samples as a grid");

  EncodeArgs ea;
  auto* encode = app.add_subcommand(
      "encode", "Integrate the PF-ODE from data to noise (DDIM inversion); report the round trip");
  encode->add_option("--model", ea.model, model_spec_help())->capture_default_str();
  encode->add_option("--sde", ea.sde, "SDE / schedule")->capture_default_str();
  add_sampler_options(encode, ea.s);
  add_model_options(encode, ea.m);
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

  ConvergeArgs ca;
  auto* converge = app.add_subcommand(
      "converge",
      "Convergence study: error vs NFE for many samplers against an accurate reference, fitted "
      "orders; resumable (results.jsonl), tables and a log-log plot in --out");
  converge->add_option("--spec", ca.spec_file,
                       "JSON spec file with the same field names (flags override it)");
  converge->add_option("--model", ca.spec.model, model_spec_help())->capture_default_str();
  converge->add_option("--sde", ca.spec.sde, "SDE / schedule")->capture_default_str();
  converge
      ->add_option("--samplers", ca.spec.samplers,
                   "Samplers, comma separated (default: every deterministic sampler, plus "
                   "euler-maruyama, ancestral, sde-dpmpp-2m, sra for strong errors)")
      ->delimiter(',');
  converge->add_option("--nfe", ca.nfe_list, "NFE list, comma separated")
      ->default_str("5,8,12,20,32,50,80,125,200,320,500,800");
  converge->add_option("--tolerances", ca.tol_list, "Adaptive samplers: rtol = atol list")
      ->default_str("1e-3,1e-4,1e-5,1e-6");
  converge->add_option("--n", ca.spec.n, "Batch size (rows of x_T)")->capture_default_str();
  converge->add_option("--seed", ca.spec.seed, "Seed of x_T and the Brownian path")
      ->capture_default_str();
  converge->add_option("--dtype", ca.spec.dtype, "float32 | float64")->capture_default_str();
  converge->add_option("--t-end", ca.spec.t_end, "End time in (0, T) (default: the SDE's)");
  converge->add_option("--grid", ca.spec.grid, "Time grid")->capture_default_str();
  converge->add_option("--ref-tol", ca.spec.ref_tol, "Reference ODE solve: rtol = atol")
      ->capture_default_str();
  converge
      ->add_option("--sde-ref-steps", ca.spec.sde_ref_steps,
                   "Reference SDE solve: SRA steps on the same Brownian path")
      ->capture_default_str();
  converge->add_option("--param", ca.spec.param,
                       "torchscript models: eps | x0 | v | score | denoiser");
  converge->add_option("--event-shape", ca.spec.event_shape,
                       "torchscript models: one sample's shape, e.g. 2 or 1,28,28");
  converge->add_option("--out", ca.out, "Output folder")->capture_default_str();
  converge->add_flag("--fresh", ca.fresh, "Start over: discard the results stored in --out");
  converge->add_flag("--quiet", ca.quiet, "No progress line on stderr");
  converge->add_flag("--json", ca.json, "Print the report as JSON instead of tables");

  FidArgs fa;
  auto* fid = app.add_subcommand(
      "fid-table",
      "Samplers x NFE -> Frechet distance and KID to a reference set in a stated feature space; "
      "resumable (results.jsonl), tables, statistics (.npz) and a plot in --out");
  fid->add_option("--spec", fa.spec_file, "JSON spec file with the same field names");
  fid->add_option("--model", fa.spec.model, model_spec_help())->capture_default_str();
  fid->add_option("--sde", fa.spec.sde, "SDE / schedule")->capture_default_str();
  fid->add_option("--samplers", fa.spec.samplers, "Samplers, comma separated")
      ->delimiter(',')
      ->default_str("ddim,dpmpp-2m,dpmpp-3m,unipc-2,heun,euler-maruyama,ancestral");
  fid->add_option("--nfe", fa.nfe_list, "NFE list, comma separated")->default_str("5,10,20,50");
  fid->add_option("--n", fa.spec.n, "Samples per cell")->capture_default_str();
  fid->add_option("--seed", fa.spec.seed, "Seed of x_T and the sampler noise (every cell)")
      ->capture_default_str();
  fid->add_option("--dtype", fa.spec.dtype, "float32 | float64")->capture_default_str();
  fid->add_option("--grid", fa.spec.grid, "Time grid (default: the schedule's)");
  fid->add_option("--t-end", fa.spec.t_end, "End time in (0, T) (default: the SDE's)");
  fid->add_option("--features", fa.spec.features,
                  "data | fmnist (the committed classifier) | torchscript:FILE.pt (forward(x) "
                  "-> [n, d])")
      ->capture_default_str();
  fid->add_option("--reference", fa.spec.reference,
                  "mixture (exact samples) | toy:NAME (exact samples of a 2-D toy set) | "
                  "fashion-mnist (test set) | npy:FILE.npy (data set) | "
                  "stats:FILE.npz (mu, sigma)")
      ->capture_default_str();
  fid->add_option("--n-ref", fa.spec.n_ref,
                  "Exact reference samples (references mixture, toy:NAME)")
      ->capture_default_str();
  fid->add_option("--kid-subsets", fa.spec.kid_subsets, "KID: subsets")->capture_default_str();
  fid->add_option("--guidance", fa.spec.guidance,
                  "Class-conditional models (balanced classes): guidance weight")
      ->capture_default_str();
  fid->add_option("--kid-subset-size", fa.spec.kid_subset_size, "KID: subset size")
      ->capture_default_str();
  fid->add_option("--param", fa.spec.param, "torchscript models: eps | x0 | v | score | denoiser");
  fid->add_option("--event-shape", fa.spec.event_shape,
                  "torchscript models: one sample's shape, e.g. 2 or 1,28,28");
  fid->add_option("--out", fa.out, "Output folder")->capture_default_str();
  fid->add_flag("--fresh", fa.fresh, "Start over: discard the results stored in --out");
  fid->add_flag("--quiet", fa.quiet, "No progress line on stderr");
  fid->add_flag("--json", fa.json, "Print the report as JSON instead of tables");

  TrainArgs ta;
  auto* tr = app.add_subcommand("train",
                                "Train a score network (MLP or U-Net) by denoising "
                                "score matching; checkpoints resume");
  tr->add_option("--data", ta.c.data,
                 "two-moons | swiss-roll | checkerboard | mixture:ring2d | mixture:gmm64 | "
                 "mixture:gmm:FILE.json | fashion-mnist")
      ->capture_default_str();
  tr->add_option("--sde", ta.c.sde, "SDE whose kernel noises the data")->capture_default_str();
  tr->add_option("--param", ta.param, "Target: eps | x0 | v")->capture_default_str();
  tr->add_option("--arch", ta.arch, "mlp | unet (default: unet for images, mlp otherwise)");
  tr->add_option("--classes", ta.c.net.num_classes,
                 "Class-conditional with this many classes (fashion-mnist: 10), 0: none")
      ->capture_default_str();
  tr->add_option("--width", ta.c.net.width, "mlp: hidden units; unet: base channels (32)")
      ->capture_default_str();
  tr->add_option("--depth", ta.c.net.depth, "mlp: residual blocks; unet: blocks per level (2)")
      ->capture_default_str();
  tr->add_option("--channel-mult", ta.channel_mult, "unet: channel multipliers per level")
      ->capture_default_str();
  tr->add_flag("--discrete", ta.c.discrete,
               "Discrete times t = n/N (DDPM steps) instead of U(t_min, T)");
  tr->add_option("--discrete-steps", ta.c.discrete_steps, "N for --discrete")
      ->capture_default_str();
  tr->add_option("--weighting", ta.c.weighting, "none | min-snr")->capture_default_str();
  tr->add_option("--steps", ta.c.steps, "Optimizer steps")->capture_default_str();
  tr->add_option("--batch", ta.c.batch, "Batch size")->capture_default_str();
  tr->add_option("--lr", ta.c.lr, "Adam learning rate")->capture_default_str();
  tr->add_option("--warmup", ta.c.warmup, "Linear warm-up steps")->capture_default_str();
  tr->add_option("--grad-clip", ta.c.grad_clip, "Gradient-norm clip")->capture_default_str();
  tr->add_option("--ema", ta.c.ema_decay, "EMA decay")->capture_default_str();
  tr->add_option("--label-dropout", ta.c.label_dropout, "P(label -> null) for guidance")
      ->capture_default_str();
  tr->add_option("--seed", ta.c.seed, "Seed (weights, batches, times, noise)")
      ->capture_default_str();
  tr->add_option("--device", ta.c.device, "cpu | cuda")->capture_default_str();
  tr->add_option("--checkpoint-every", ta.c.checkpoint_every, "Steps between checkpoints")
      ->capture_default_str();
  tr->add_option("--log-every", ta.c.log_every, "Steps between progress lines")
      ->capture_default_str();
  tr->add_option("--out", ta.out, "Output folder")->capture_default_str();
  tr->add_flag("--resume", ta.resume, "Continue from --out/checkpoint.pt (same config)");
  tr->add_flag("--quiet", ta.quiet, "No progress lines on stderr");

  ClassifierArgs cla;
  auto* clc = app.add_subcommand("classifier",
                                 "Train the Fashion-MNIST feature classifier; "
                                 "report test accuracy; write stats");
  clc->add_option("--epochs", cla.c.epochs, "Epochs")->capture_default_str();
  clc->add_option("--batch", cla.c.batch, "Batch size")->capture_default_str();
  clc->add_option("--lr", cla.c.lr, "Adam learning rate")->capture_default_str();
  clc->add_option("--seed", cla.c.seed, "Seed")->capture_default_str();
  clc->add_option("--out", cla.out, "Output file")->capture_default_str();
  clc->add_option("--stats", cla.stats, "Also write the test set's feature statistics (.npz)");
  clc->add_flag("--quiet", cla.quiet, "No progress lines on stderr");

  DistillCommand distill(app);

  // One thread budget on every command (apps/runtime.hpp).
  int threads = 0;
  const std::function<void(CLI::App*)> add_threads = [&](CLI::App* c) {
    c->add_option("--threads", threads,
                  "Threads for tensor operations (0: one per core); OpenBLAS stays at 1")
        ->capture_default_str();
    for (CLI::App* sub : c->get_subcommands({})) add_threads(sub);
  };

  std::string fd_a, fd_b;
  auto* fd = app.add_subcommand("fd",
                                "Frechet distance between two statistics files "
                                "(.npz with mu and sigma, pytorch-fid)");
  fd->add_option("A", fd_a, "First .npz")->required();
  fd->add_option("B", fd_b, "Second .npz")->required();

  for (CLI::App* sub : app.get_subcommands({})) add_threads(sub);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e, out, err);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e, out, err);
  } catch (const CLI::ParseError& e) {
    // Usage errors are bad input: exit 2 with one line, like every other bad input.
    err << "error: " << clipped(one_line(e.what())) << " (see --help)\n";
    return 2;
  }
  try {
    configure_threads(threads);
    if (app.got_subcommand("list")) {
      cmd_list(out);
      return 0;
    }
    if (app.got_subcommand("sample")) {
      sa.n_given = n_opt->count() > 0;
      sa.nfe_given = sample->get_option("--nfe")->count() > 0;
      sa.t_end_given = sample->get_option("--t-end")->count() > 0;
      return cmd_sample(sa, out);
    }
    if (app.got_subcommand("encode")) {
      ea.nfe_given = encode->get_option("--nfe")->count() > 0;
      ea.t_start_given = encode->get_option("--t-start")->count() > 0;
      return cmd_encode(ea, out);
    }
    if (app.got_subcommand("converge")) {
      std::vector<const CLI::Option*> given;
      for (const auto* o : converge->get_options()) given.push_back(o);
      return cmd_converge(ca, given, out, err);
    }
    if (app.got_subcommand("fid-table")) return cmd_fid_table(fa, *fid, out, err);
    if (app.got_subcommand("fd")) return cmd_fd(fd_a, fd_b, out);
    if (app.got_subcommand("train")) {
      for (int i = 0; i < argc; ++i) ta.command += (i ? " " : "") + std::string(argv[i]);
      return cmd_train(ta, *tr, out, err);
    }
    if (app.got_subcommand("classifier")) return cmd_classifier(cla, out, err);
    if (distill.chosen()) {
      std::string command;
      for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);
      return distill.run(command, out, err);
    }
    if (app.got_subcommand("moments")) {
      if (ma.steps < 1)
        throw std::invalid_argument("--steps must be >= 1, got " + std::to_string(ma.steps));
      if (ma.n < 2) throw std::invalid_argument("--n must be >= 2, got " + std::to_string(ma.n));
      return cmd_moments(ma, out);
    }
  } catch (const std::invalid_argument& e) {
    err << "error: " << clipped(e.what()) << "\n";
    return 2;
  } catch (const c10::Error& e) {
    // LibTorch's messages carry a C++ backtrace; the user gets the message alone.
    err << "error: " << clipped(brief_error(e)) << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    err << "error: out of memory (a smaller --n or --batch needs less)\n";
    return 1;
  } catch (const std::exception& e) {
    err << "error: " << clipped(e.what()) << "\n";
    return 1;
  }
  return 0;
}

}  // namespace sdekit
