// `sdekit encode`: the PF-ODE from data to noise (DDIM inversion) and the round trip back.
#include <cmath>
#include <ostream>
#include <sstream>
#include <stdexcept>

#include "apps/cli_common.hpp"
#include "apps/command.hpp"
#include "experiments/npy_io.hpp"
#include "models/resources.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/sample.hpp"

namespace sdekit {
namespace {
using namespace cli;

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
  bool nfe_given = false, t_start_given = false, steps_given = false, grid_given = false;
};

int cmd_encode(const EncodeArgs& a, std::ostream& out) {
  check_count("--steps", a.steps, 1, kMaxSteps);
  a.s.check(a.nfe_given);
  const SDEPtr sde = make_sde(a.sde);
  const SchedulePtr kernel = sde->schedule();
  const auto sampler = make_sampler(a.s.sampler, a.s.options(a.nfe_given));
  if (sampler->stochastic())
    throw std::invalid_argument("--sampler " + a.s.sampler +
                                " is stochastic; encoding needs a deterministic one");
  int64_t D = 0;
  const LoadedModel lm = load_cli_model(a.model, kernel, a.m, D);
  const Interval d = sde->domain();
  SampleSpec spec;
  spec.options = at::TensorOptions().dtype(parse_dtype(a.dtype));
  spec.steps = cli_steps(a.s, *sampler, a.steps, a.steps_given, a.nfe_given, a.grid_given);
  if (!a.grid.empty()) {
    const GridChoice g = parse_grid_choice(a.grid);
    spec.grid = g.kind;
    spec.grid_file = g.file;
  }
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
      << " with " << sampler->name() << " (" << enc.steps << " steps, NFE " << enc.nfe
      << (a.nfe_given ? nfe_note(a.s, *sampler, enc.nfe) : std::string()) << ")\n";
  out << "round trip (decode with the same sampler, NFE " << dec.nfe << "): rms error "
      << fmt(diff.pow(2).mean().sqrt().item<double>()) << ", max error "
      << fmt(diff.abs().max().item<double>()) << "\n";
  if (!a.out.empty()) out << "wrote " << a.out << "\n";
  return 0;
}

class EncodeCommand final : public Command {
 public:
  void add_to(CLI::App& app) override {
    sub_ = app.add_subcommand(
        "encode",
        "Integrate the PF-ODE from data to noise (DDIM inversion); report the round trip");
    sub_->add_option("--model", a_.model, model_spec_help())->capture_default_str();
    sub_->add_option("--sde", a_.sde, "SDE / schedule")->capture_default_str();
    add_sampler_options(sub_, a_.s);
    add_model_options(sub_, a_.m);
    sub_->add_option("--steps", a_.steps, "Number of steps")->capture_default_str();
    sub_->add_option("--grid", a_.grid, "Time grid (default: karras for edm, uniform-t otherwise)");
    sub_->add_option("--x0", a_.x0,
                     "Points to encode, a .npy array [n, D] (default: exact samples at --t-start)");
    sub_->add_option("-n,--n", a_.n, "Number of exact samples to encode without --x0")
        ->capture_default_str();
    sub_->add_option("--seed", a_.seed, "Seed of those samples")->capture_default_str();
    sub_->add_option("--t-start", a_.t_start, "Start time in (0, T) (default: the SDE's end time)");
    sub_->add_option("--dtype", a_.dtype, "float32 | float64")->capture_default_str();
    sub_->add_option("--out", a_.out, "Output .npy file for x_T [n, D]");
  }
  int run(const std::string&, std::ostream& out, std::ostream&) override {
    a_.nfe_given = sub_->get_option("--nfe")->count() > 0;
    a_.steps_given = sub_->get_option("--steps")->count() > 0;
    a_.grid_given = sub_->get_option("--grid")->count() > 0;
    a_.t_start_given = sub_->get_option("--t-start")->count() > 0;
    return cmd_encode(a_, out);
  }

 private:
  EncodeArgs a_;
};
}  // namespace

std::unique_ptr<Command> make_encode_command() {
  return std::make_unique<EncodeCommand>();
}

}  // namespace sdekit
