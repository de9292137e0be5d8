// `sdekit optimize-grid`: the interior times of a K-step grid chosen for a model and a sampler
// (experiments/optimize_grid.hpp), written as a grid file for --grid file:GRID.json.
#include <ostream>

#include "apps/cli_common.hpp"
#include "apps/command.hpp"
#include "experiments/optimize_grid.hpp"

namespace sdekit {
namespace {

class OptimizeGridCommand final : public Command {
 public:
  void add_to(CLI::App& app) override {
    sub_ = app.add_subcommand(
        "optimize-grid",
        "Choose a K-step time grid for a model and a sampler: the interior times minimizing the "
        "RMS error against the accurate PF-ODE on calibration rows (NLopt BOBYQA), reported on "
        "held-out rows next to the standard grids; writes --out for --grid file:GRID.json");
    OptimizeGridSpec& s = spec_;
    sub_->add_option("--model", s.model, "Model")->capture_default_str();
    sub_->add_option("--sde", s.sde, "SDE / schedule")->capture_default_str();
    sub_->add_option("--sampler", s.sampler, "Fixed-step deterministic sampler")
        ->capture_default_str();
    sub_->add_option("--nfe", s.nfe, "NFE budget (the sampler's steps for it)")
        ->capture_default_str();
    sub_->add_option("--n-calib", s.n_calib, "Calibration rows of x_T (seed)")
        ->capture_default_str();
    sub_->add_option("--n-test", s.n_test, "Held-out rows of x_T (seed + 1)")
        ->capture_default_str();
    sub_->add_option("--seed", s.seed, "Seed of the calibration rows")->capture_default_str();
    sub_->add_option("--init", s.init, "Starting grid")->capture_default_str();
    sub_->add_option("--max-evals", s.max_evals, "Objective evaluations at most")
        ->capture_default_str();
    sub_->add_option("--xtol", s.xtol, "BOBYQA's relative tolerance on the log step sizes")
        ->capture_default_str();
    sub_->add_option("--ref-tol", s.ref_tol, "Reference dopri5 rtol = atol")->capture_default_str();
    sub_->add_option("--t-end", s.t_end, "End time (default: the SDE's)");
    sub_->add_option("--dtype", s.dtype, "float64 | float32")->capture_default_str();
    sub_->add_option("--param", s.param, "torchscript models: the parameterization");
    sub_->add_option("--event-shape", s.event_shape, "torchscript models: one sample's shape");
    sub_->add_option("--out", out_, "The grid file to write")->capture_default_str();
    sub_->add_flag("--json", json_, "The report as JSON on stdout");
  }
  int run(const std::string&, std::ostream& out, std::ostream&) override {
    cli::check_output_file("--out", out_);
    const OptimizeGridReport r = optimize_grid(spec_);
    write_optimized_grid(r, out_);
    if (json_) {
      out << optimize_grid_json(r) << "\n";
      return 0;
    }
    out << optimize_grid_markdown(r) << "\nWrote " << out_ << " (use --grid file:" << out_
        << ").\n";
    return 0;
  }

 private:
  OptimizeGridSpec spec_;
  std::string out_ = "grid.json";
  bool json_ = false;
};
}  // namespace

std::unique_ptr<Command> make_optimize_grid_command() {
  return std::make_unique<OptimizeGridCommand>();
}

}  // namespace sdekit
