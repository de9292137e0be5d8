// `sdekit sample`: one sampler, one model; samples as .npy, optionally a plot.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <ostream>
#include <sstream>
#include <stdexcept>

#include "apps/cli_common.hpp"
#include "apps/command.hpp"
#include "apps/plot.hpp"
#include "experiments/distributed.hpp"
#include "experiments/kde.hpp"
#include "experiments/npy_io.hpp"
#include "models/classifier_guidance.hpp"
#include "models/resources.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/brownian_tree.hpp"
#include "solvers/sample.hpp"

namespace sdekit {
namespace {
using namespace cli;

struct SampleArgs {
  std::string model = "ring2d";
  std::string sde = "vp-linear";
  double shift = 1.0;  // --sde flow: the time shift
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
  bool final_denoise = false;  // --final-denoise: end with the step to sigma = 0
  std::string noise;           // --noise FILE.npy: replayed standard-normal draws
  std::string rng = "rows";    // --rng: row-keyed noise or one generator
  int64_t batch = 0;           // --batch: rows per model batch (0: all at once)
  std::string out;
  std::string plot;
  bool n_given = false, nfe_given = false, t_end_given = false, steps_given = false,
       grid_given = false;
};

int cmd_sample(const SampleArgs& a, std::ostream& out) {
  check_count("--steps", a.steps, 1, kMaxSteps);
  a.s.check(a.nfe_given);
  if (!a.n_given || a.x_init.empty())
    check_count("--n", a.n, 1, std::numeric_limits<int64_t>::max());
  // Validate everything before any work.
  const SDEPtr sde = make_sde(a.sde);
  const SchedulePtr kernel = sde->schedule();
  // The step to sigma = 0: asked for, or k-diffusion's grids (not for a consistency function,
  // which already ends at the data).
  const bool to_zero =
      a.final_denoise ||
      (a.s.compat_to_zero() && !make_sampler(a.s.sampler, a.s.options(false))->consistency());
  const auto sampler = make_sampler(a.s.sampler, a.s.options(a.nfe_given, to_zero));
  if (to_zero && sampler->consistency())
    throw std::invalid_argument("--final-denoise does not apply to --sampler " + a.s.sampler +
                                ": a consistency function already maps to the data");
  int64_t D = 0;
  const LoadedModel lm = load_cli_model(a.model, kernel, a.m, D);
  SampleSpec spec;
  spec.options = at::TensorOptions().dtype(parse_dtype(a.dtype));
  spec.steps = cli_steps(a.s, *sampler, a.steps, a.steps_given, a.nfe_given, a.grid_given, to_zero);
  spec.to_zero = to_zero;
  if (to_zero && !kernel)
    throw std::invalid_argument("--final-denoise: --sde " + a.sde +
                                " has no Gaussian kernel, so no x0 prediction for the step to "
                                "sigma = 0");
  if (!a.grid.empty()) {
    const GridChoice g = parse_grid_choice(a.grid);
    spec.grid = g.kind;
    spec.grid_file = g.file;
  }
  spec.t_end = a.t_end_given ? a.t_end : -1.0;
  spec.n = a.n;
  spec.event_shape = lm.event_shape;
  spec.seed = a.seed;
  spec.rng = parse_rng(a.rng);
  if (a.batch < 0)
    throw std::invalid_argument("--batch: expected >= 0 (0: every row at once), got " +
                                std::to_string(a.batch));
  const Interval d = sde->domain();
  if (a.t_end_given && !(a.t_end > d.lo && a.t_end < d.hi)) {
    std::ostringstream os;
    os << "--t-end must lie in (" << d.lo << ", " << d.hi << ") for --sde " << a.sde << ", got "
       << a.t_end;
    if (a.t_end <= d.lo)
      os << " (to end at sigma = 0, keep --t-end inside and add --final-denoise: the last step "
            "then goes from t_end to sigma = 0)";
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
  if (!a.noise.empty()) {
    if (a.brownian)
      throw std::invalid_argument("--noise and --brownian exclude each other: give one source");
    if (!sampler->stochastic())
      throw std::invalid_argument("--noise: sampler '" + a.s.sampler +
                                  "' is deterministic and draws no noise");
    at::Tensor blocks = read_npy(a.noise);
    std::vector<int64_t> want = {blocks.dim() > 0 ? blocks.size(0) : 0,
                                 spec.x_init.defined() ? spec.x_init.size(0) : a.n};
    want.insert(want.end(), lm.event_shape.begin(), lm.event_shape.end());
    if (blocks.dim() == 3 && blocks.size(1) == want[1] && blocks.size(2) == D)
      blocks = blocks.reshape(want);
    if (blocks.sizes() != at::IntArrayRef(want) || want[0] < 1)
      throw std::invalid_argument("--noise '" + a.noise + "': expected blocks [K, " +
                                  std::to_string(want[1]) + ", " + std::to_string(D) +
                                  "] (K >= 1, one per draw), got " + fmt_shape(blocks));
    spec.noise = std::make_shared<NoiseReplay>(blocks, "--noise '" + a.noise + "'");
  }
  const int64_t side = static_cast<int64_t>(std::lround(std::sqrt(double(D))));
  const bool scatter = D == 2;
  if (!a.plot.empty() && !scatter && side * side != D)
    throw std::invalid_argument(
        "--plot: needs 2-D samples (a scatter) or square images (D = k^2, a PNG grid); model " +
        a.model + " has D = " + std::to_string(D));
  // Before sampling, not after; on the rank that writes them (the others may not see its folder).
  if (!a.out.empty() && dist::writer()) check_output_file("--out", a.out);
  if (!a.plot.empty() && dist::writer()) check_output_file("--plot", a.plot);
  const int64_t n_rows = spec.x_init.defined() ? spec.x_init.size(0) : a.n;
  // This process's rows (all of them in one process), in batches of --batch.
  const auto [row_lo, row_hi] = dist::shard(n_rows);
  if (dist::active() && row_hi <= row_lo)
    throw std::invalid_argument(
        "--n " + std::to_string(n_rows) + " leaves rank " + std::to_string(dist::rank()) + " of " +
        std::to_string(dist::world()) + " without rows: give at least one row per rank");
  if ((dist::active() || (a.batch > 0 && a.batch < n_rows)) && spec.rng == RngKind::Generator)
    throw std::invalid_argument(
        "--rng generator: one generator's stream depends on the batch, so it cannot be split "
        "over --batch or over processes; use --rng rows (the default)");
  if ((dist::active() || (a.batch > 0 && a.batch < n_rows)) && a.brownian)
    throw std::invalid_argument(
        "--brownian: a Brownian path spans the whole batch; it cannot be split over --batch or "
        "over processes");
  {
    const int64_t rows =
        a.batch > 0 ? std::min<int64_t>(a.batch, row_hi - row_lo) : row_hi - row_lo;
    const double elem = spec.options.dtype() == at::kDouble ? 8.0 : 4.0;
    // The batch with a sampler's buffers and the model's temporaries, and the time grid.
    require_memory("--n " + std::to_string(rows),
                   64.0 * elem * double(rows) * double(D) + 32.0 * double(spec.steps));
  }

  const auto t0 = std::chrono::steady_clock::now();
  SampleResult res;
  try {
    res = sample_rows(*sampler, *lm.model, *sde, spec, row_lo, row_hi, a.batch);
    if (dist::active()) res.x = dist::all_gather_rows(res.x.contiguous(), "gathering the samples");
  } catch (const NoiseExhausted&) {
    // How many draws the run needs: the same run with counted zeros.
    SampleSpec count = spec;
    count.noise = NoiseReplay::counter();
    sample(*sampler, *lm.model, *sde, count);
    throw std::invalid_argument("--noise '" + a.noise + "': holds " +
                                std::to_string(spec.noise->size()) + " blocks; this run draws " +
                                std::to_string(count.noise->used()) +
                                " (one block per draw, in the order drawn)");
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!a.out.empty() && dist::writer()) write_npy(a.out, res.x.reshape({res.x.size(0), D}));

  const double t_end = a.t_end_given ? a.t_end : sde->default_t_end();
  const int grid_intervals = to_zero ? spec.steps - 1 : spec.steps;
  out << "sampled " << res.x.size(0) << " x " << D << " (" << a.dtype << ") from " << lm.description
      << " with " << sampler->name() << " on " << a.sde << ", "
      << (sampler->adaptive()
              ? std::to_string(res.steps) + " adaptive steps"
              : std::to_string(res.steps) + " steps" +
                    (sampler->grid_groups(grid_intervals).empty()
                         ? std::string()
                         : " over " + std::to_string(grid_intervals) + " grid intervals") +
                    " (" +
                    (spec.grid_file.empty() ? grid_name(spec.grid.value_or(default_grid(*kernel)))
                                            : "file:" + spec.grid_file) +
                    ")")
      << ", t: " << d.hi << " -> " << t_end
      << (to_zero ? " -> sigma = 0 (the last step: x0 prediction at t_end)" : "") << ", NFE "
      << res.nfe
      << (sampler->adaptive() && res.attempts > 0
              ? " (" + std::to_string(res.attempts) + " attempted steps; the official count, " +
                    std::to_string(sampler->nfe_per_step()) + " x attempts, is " +
                    std::to_string(int64_t(sampler->nfe_per_step()) * res.attempts) + ")"
              : std::string())
      << (a.nfe_given ? nfe_note(a.s, *sampler, res.nfe) : std::string())
      << (spec.noise ? ", noise blocks used " + std::to_string(spec.noise->used()) + " of " +
                           std::to_string(spec.noise->size())
                     : std::string())
      << (lm.classifier_guided
              ? ", classifier calls " + std::to_string(lm.classifier_guided->classifier_calls()) +
                    " (" + fmt(lm.classifier_guided->classifier_seconds(), 3) + " s)"
              : std::string())
      << (dist::active() ? ", over " + std::to_string(dist::world()) + " processes" : std::string())
      << ", " << fmt(secs, 3) << " s\n";
  if (lm.mixture) {
    const at::Tensor m = res.x.to(at::kDouble).mean(0);
    // With the step to sigma = 0 the samples are of the data (alpha = 1, sigma = 0).
    const at::Tensor m_exact = lm.mixture->mean(to_zero ? 1.0 : kernel->alpha(t_end));
    out << "mean error ||m - m_exact|| = " << fmt((m - m_exact).norm().item<double>()) << "\n";
  }
  if (!a.out.empty()) out << "wrote " << a.out << " [n, " << D << "]\n";
  if (!a.plot.empty() && dist::writer()) {
    if (scatter && !lm.mixture) {
      // No exact density: contours of a kernel density estimate of the samples.
      const KernelDensity2D kde(res.x);
      auto log_kde = [&](double u, double v) { return kde.log_density(u, v); };
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
                                  res.x, *lm.mixture, to_zero ? 1.0 : kernel->alpha(t_end),
                                  to_zero ? 0.0 : kernel->sigma(t_end))
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

class SampleCommand final : public Command {
 public:
  void add_to(CLI::App& app) override {
    sub_ =
        app.add_subcommand("sample", "Sample a model with one sampler; write the samples as .npy");
    sub_->add_option("--model", a_.model, model_spec_help())->capture_default_str();
    sub_->add_option("--sde", a_.sde, "SDE / schedule (see `sdekit list`)")->capture_default_str();
    sub_->add_option("--shift", a_.shift,
                     "--sde flow: the time shift s of SD3 and Flux, u = s t / (1 + (s - 1) t)")
        ->capture_default_str();
    add_sampler_options(sub_, a_.s);
    add_model_options(sub_, a_.m);
    sub_->add_option("--steps", a_.steps, "Number of steps")->capture_default_str();
    sub_->add_option("--grid", a_.grid, "Time grid (default: karras for edm, uniform-t otherwise)");
    n_opt_ = sub_->add_option("-n,--n", a_.n, "Number of samples (ignored with --x-init)")
                 ->capture_default_str();
    sub_->add_option("--seed", a_.seed, "Seed of the prior draw and the sampler noise")
        ->capture_default_str();
    sub_->add_option("--x-init", a_.x_init,
                     "Initial points x_T, a .npy array [n, D] (float32/float64)");
    sub_->add_option("--t-end", a_.t_end, "End time in (0, T) (default: the SDE's)");
    sub_->add_option("--dtype", a_.dtype, "float32 | float64")->capture_default_str();
    sub_->add_flag("--final-denoise", a_.final_denoise,
                   "End with a step to sigma = 0 (x = the x0 prediction at t_end; lms its own "
                   "step), one more model call and the last of --steps (set by --compat "
                   "k-diffusion)");
    sub_->add_flag("--brownian", a_.brownian,
                   "Draw the noise from a virtual Brownian tree (same path at any step count)");
    sub_->add_option("--noise", a_.noise,
                     "Replay the sampler's standard-normal draws: a .npy [K, n, D], block k the "
                     "k-th draw (stochastic samplers; not with --brownian)");
    sub_->add_option("--rng", a_.rng,
                     "rows: row i's x_T and noise depend only on (seed, i), the same at any "
                     "--batch and number of processes | generator: one generator for the batch "
                     "(the stream of earlier versions)")
        ->capture_default_str();
    sub_->add_option("--batch", a_.batch,
                     "Rows per model batch (0: every row at once); with --rng rows the samples "
                     "do not depend on it")
        ->capture_default_str();
    sub_->add_option("--out", a_.out, "Output .npy file for the samples [n, D]");
    sub_->add_option(
        "--plot", a_.plot,
        "PNG: 2-D samples over the density's contours (a mixture's exact density, else "
        "a kernel density estimate; gnuplot), or square-image "
        "samples as a grid");
  }
  int run(const std::string&, std::ostream& out, std::ostream&) override {
    a_.n_given = n_opt_->count() > 0;
    a_.nfe_given = sub_->get_option("--nfe")->count() > 0;
    a_.steps_given = sub_->get_option("--steps")->count() > 0;
    a_.grid_given = sub_->get_option("--grid")->count() > 0;
    a_.t_end_given = sub_->get_option("--t-end")->count() > 0;
    a_.sde = sde_with_shift(a_.sde, a_.shift, sub_->get_option("--shift")->count() > 0);
    return cmd_sample(a_, out);
  }
  bool shards() const override { return true; }

 private:
  SampleArgs a_;
  CLI::Option* n_opt_ = nullptr;
};
}  // namespace

std::unique_ptr<Command> make_sample_command() {
  return std::make_unique<SampleCommand>();
}

}  // namespace sdekit
