// `sdekit converge`: error vs NFE against a reference, fitted orders, tables and plots.
#include <cmath>
#include <filesystem>
#include <ostream>
#include <stdexcept>

#include "apps/cli_common.hpp"
#include "apps/command.hpp"
#include "apps/plot.hpp"
#include "experiments/converge.hpp"
#include "models/resources.hpp"

namespace sdekit {
namespace {
using namespace cli;

struct ConvergeArgs {
  std::string spec_file;
  ConvergeSpec spec;
  std::string nfe_list, tol_list;
  std::string out = "out/converge";
  bool fresh = false, quiet = false, json = false;
};

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
  if (was_given("--nfe")) spec.nfe = parse_nfe_list(a.nfe_list);
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

class ConvergeCommand final : public Command {
 public:
  void add_to(CLI::App& app) override {
    sub_ = app.add_subcommand(
        "converge",
        "Convergence study: error vs NFE for many samplers against an accurate reference, fitted "
        "orders; resumable (results.jsonl), tables and a log-log plot in --out");
    sub_->add_option("--spec", a_.spec_file,
                     "JSON spec file with the same field names (flags override it)");
    sub_->add_option("--model", a_.spec.model, model_spec_help())->capture_default_str();
    sub_->add_option("--sde", a_.spec.sde, "SDE / schedule")->capture_default_str();
    sub_->add_option("--samplers", a_.spec.samplers,
                     "Samplers, comma separated (default: every deterministic sampler, plus "
                     "euler-maruyama, ancestral, sde-dpmpp-2m, sra for strong errors)")
        ->delimiter(',');
    sub_->add_option("--nfe", a_.nfe_list, "NFE list, comma separated")
        ->default_str("5,8,12,20,32,50,80,125,200,320,500,800");
    sub_->add_option("--tolerances", a_.tol_list, "Adaptive samplers: rtol = atol list")
        ->default_str("1e-3,1e-4,1e-5,1e-6");
    sub_->add_option("--n", a_.spec.n, "Batch size (rows of x_T)")->capture_default_str();
    sub_->add_option("--seed", a_.spec.seed, "Seed of x_T and the Brownian path")
        ->capture_default_str();
    sub_->add_option("--dtype", a_.spec.dtype, "float32 | float64")->capture_default_str();
    sub_->add_option("--t-end", a_.spec.t_end, "End time in (0, T) (default: the SDE's)");
    sub_->add_option("--grid", a_.spec.grid, "Time grid")->capture_default_str();
    sub_->add_option("--ref-tol", a_.spec.ref_tol, "Reference ODE solve: rtol = atol")
        ->capture_default_str();
    sub_->add_option("--sde-ref-steps", a_.spec.sde_ref_steps,
                     "Reference SDE solve: SRA steps on the same Brownian path")
        ->capture_default_str();
    add_study_options(sub_, a_.spec.param, a_.spec.event_shape, a_.out, a_.fresh, a_.quiet,
                      a_.json);
  }
  int run(const std::string&, std::ostream& out, std::ostream& err) override {
    std::vector<const CLI::Option*> given;
    for (const auto* o : sub_->get_options()) given.push_back(o);
    return cmd_converge(a_, given, out, err);
  }

 private:
  ConvergeArgs a_;
};
}  // namespace

std::unique_ptr<Command> make_converge_command() {
  return std::make_unique<ConvergeCommand>();
}

}  // namespace sdekit
