// `sdekit likelihood`: per-sample log-likelihoods through the probability-flow ODE, their
// convergence with the solver's tolerance or NFE, bits per dimension.
#include <cmath>
#include <filesystem>
#include <ostream>

#include "apps/cli_common.hpp"
#include "apps/command.hpp"
#include "apps/plot.hpp"
#include "apps/spec_flags.hpp"
#include "experiments/distributed.hpp"
#include "experiments/likelihood.hpp"
#include "models/resources.hpp"

namespace sdekit {
namespace {
using namespace cli;

struct LikelihoodArgs {
  std::string spec_file;
  SpecFlags<LikelihoodSpec> flags;
  std::string out = "out/likelihood";
  bool fresh = false, quiet = false, json = false;
};

int cmd_likelihood(LikelihoodArgs& a, std::ostream& out, std::ostream& err) {
  LikelihoodSpec spec;
  if (!a.spec_file.empty())
    spec = likelihood_spec_from_json(read_text_file(a.spec_file, "--spec"), a.spec_file);
  a.flags.apply(spec);
  validate(spec);
  ProgressLine line(err, a.quiet || !dist::writer());  // rank 0 alone reports
  const LikelihoodReport rep = run_likelihood(spec, a.out, a.fresh, [&](const StudyProgress& p) {
    line.update(p.done, p.total, p.cell.empty() ? std::string("done") : p.cell, p.elapsed, p.eta);
  });
  line.finish();
  if (!dist::writer()) return 0;  // rank 0 alone writes the results folder
  write_likelihood_tables(rep, a.out);
  Series s{spec.sampler, {}, {}};
  for (const auto& c : rep.cells)
    if (std::isfinite(c.error) && c.error > 0) {
      s.x.push_back(double(c.nfe));
      s.y.push_back(c.error);
    }
  std::string plot_note;
  if (s.x.size() >= 2)
    plot_note = plot_loglog((std::filesystem::path(a.out) / "nll_error_vs_nfe.png").string(),
                            "log-likelihood error vs NFE (" + spec.model + ")", "NFE",
                            "mean |log p - reference| (nats)", {s}, {})
                    .message;
  if (a.json) {
    out << likelihood_report_json(rep) << "\n";
    return 0;
  }
  out << likelihood_protocol(rep) << "\n" << likelihood_markdown(rep) << "\n";
  const LikelihoodCell& best = rep.cells.back();
  out << (best.elbo ? "Variational bound" : "Most accurate cell (" + best.key() + ")") << ": NLL "
      << (best.elbo ? "<= " : "") << fmt(best.mean_nll, 8) << " +- " << fmt(best.se_nll, 3)
      << " nats per sample, " << fmt(best.bpd, 6) << " bits/dim, NFE " << best.nfe << ", "
      << fmt(best.seconds, 3) << " s.\n";
  out << "Cells: " << rep.computed << " computed, " << rep.resumed << " reused from " << a.out
      << "/results.jsonl.\n";
  out << "Wrote " << a.out
      << "/{nll.npy (nats per row: the most accurate cell or the bound), cells/, results.jsonl, "
         "results.csv, "
         "results.md, spec.json}\n";
  if (!plot_note.empty()) out << plot_note << "\n";
  return 0;
}

class LikelihoodCommand final : public Command {
 public:
  void add_to(CLI::App& app) override {
    sub_ = app.add_subcommand(
        "likelihood",
        "Log-likelihoods through the probability-flow ODE (exact or Hutchinson divergence) over "
        "solver tolerances or NFE, or variational bounds (DDPM's discrete ELBO, the "
        "continuous-time bound); per-sample values, bits/dim, errors and order; resumable");
    sub_->add_option("--spec", a_.spec_file, "JSON spec file with the same field names");
    a_.flags.add_to(sub_, likelihood_spec_schema());
    add_study_options(sub_, a_.out, a_.fresh, a_.quiet, a_.json);
  }
  int run(const std::string&, std::ostream& out, std::ostream& err) override {
    return cmd_likelihood(a_, out, err);
  }
  bool shards() const override { return true; }

 private:
  LikelihoodArgs a_;
};
}  // namespace

std::unique_ptr<Command> make_likelihood_command() {
  return std::make_unique<LikelihoodCommand>();
}

}  // namespace sdekit
