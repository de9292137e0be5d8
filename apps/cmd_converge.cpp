// `sdekit converge`: error vs NFE against a reference, fitted orders, tables and plots.
#include <cmath>
#include <filesystem>
#include <ostream>
#include <stdexcept>

#include "apps/cli_common.hpp"
#include "apps/command.hpp"
#include "apps/plot.hpp"
#include "apps/spec_flags.hpp"
#include "experiments/converge.hpp"
#include "experiments/distributed.hpp"
#include "models/resources.hpp"

namespace sdekit {
namespace {
using namespace cli;

struct ConvergeArgs {
  std::string spec_file;
  SpecFlags<ConvergeSpec> flags;
  std::string out = "out/converge";
  bool fresh = false, quiet = false, json = false;
};

std::vector<Series> converge_series(const ConvergeReport& r, bool stochastic) {
  std::vector<Series> out;
  for (const auto& s : r.summaries) {
    if ((s.kind == CellKind::Sde) != stochastic || s.nfe.empty()) continue;
    out.push_back({s.sampler, s.nfe, s.rms});
  }
  return out;
}

int cmd_converge(ConvergeArgs& a, std::ostream& out, std::ostream& err) {
  ConvergeSpec spec;
  if (!a.spec_file.empty()) {
    spec = converge_spec_from_json(read_text_file(a.spec_file, "--spec"), a.spec_file);
  }
  a.flags.apply(spec);  // flags given on the command line override the spec file
  validate(spec);

  ProgressLine line(err, a.quiet || !dist::writer());  // rank 0 alone reports
  const ConvergeReport rep = run_converge(spec, a.out, a.fresh, [&](const ConvergeProgress& p) {
    line.update(p.done, p.total, p.cell.empty() ? std::string("done") : p.cell, p.elapsed, p.eta);
  });
  line.finish();
  if (!dist::writer()) return 0;  // rank 0 alone writes the results folder
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
    a_.flags.add_to(sub_, converge_spec_schema());
    add_study_options(sub_, a_.out, a_.fresh, a_.quiet, a_.json);
  }
  int run(const std::string&, std::ostream& out, std::ostream& err) override {
    return cmd_converge(a_, out, err);
  }
  bool shards() const override { return true; }

 private:
  ConvergeArgs a_;
};
}  // namespace

std::unique_ptr<Command> make_converge_command() {
  return std::make_unique<ConvergeCommand>();
}

}  // namespace sdekit
