// `sdekit guidance-table`: classifier guidance (scales s) against classifier-free guidance
// (weights w) on Fashion-MNIST: class FD, overall FD and class accuracy per row.
#include <filesystem>
#include <ostream>

#include "apps/cli_common.hpp"
#include "apps/command.hpp"
#include "apps/plot.hpp"
#include "apps/spec_flags.hpp"
#include "experiments/guidance_table.hpp"
#include "models/resources.hpp"

namespace sdekit {
namespace {
using namespace cli;

struct GuidanceArgs {
  std::string spec_file;
  SpecFlags<GuidanceTableSpec> flags;
  std::string out = "out/guidance-table";
  bool fresh = false, quiet = false, json = false;
};

int cmd_guidance_table(GuidanceArgs& a, std::ostream& out, std::ostream& err) {
  GuidanceTableSpec spec;
  if (!a.spec_file.empty())
    spec = guidance_spec_from_json(read_text_file(a.spec_file, "--spec"), a.spec_file);
  a.flags.apply(spec);
  validate(spec);
  ProgressLine line(err, a.quiet);
  const GuidanceTableReport rep =
      run_guidance_table(spec, a.out, a.fresh, [&](const StudyProgress& p) {
        line.update(p.done, p.total, p.cell.empty() ? std::string("done") : p.cell, p.elapsed,
                    p.eta);
      });
  line.finish();
  write_guidance_tables(rep, a.out);
  // The trade-off: accuracy against the overall FD, one line per kind of guidance.
  std::vector<Series> series;
  for (const auto& [kind, label] :
       {std::pair<std::string, std::string>{"classifier", "classifier guidance (s)"},
        std::pair<std::string, std::string>{"cfg", "classifier-free guidance (w)"}}) {
    Series s{label, {}, {}};
    for (const auto& r : rep.rows)
      if (r.kind == kind) {
        s.x.push_back(100 * r.accuracy);
        s.y.push_back(r.fd_all);
      }
    if (!s.x.empty()) series.push_back(s);
  }
  const std::string plot_note =
      plot_loglog((std::filesystem::path(a.out) / "tradeoff.png").string(),
                  "Guidance trade-off (" + spec.sampler + ", " + std::to_string(spec.steps) +
                      " steps; points in order of s and w)",
                  "class accuracy of the samples (%)", "Frechet distance to the test set", series,
                  {}, rep.floor_fd_all)
          .message;
  if (a.json) {
    out << guidance_report_json(rep) << "\n";
    return 0;
  }
  out << guidance_markdown(rep) << "\n";
  out << "Rows: " << rep.computed << " computed, " << rep.resumed << " reused from " << a.out
      << "/results.jsonl.\n";
  out << "Wrote " << a.out << "/{results.jsonl, results.csv, results.md, spec.json}\n";
  out << plot_note << "\n";
  return 0;
}

class GuidanceTableCommand final : public Command {
 public:
  void add_to(CLI::App& app) override {
    sub_ = app.add_subcommand(
        "guidance-table",
        "Classifier guidance (scales s) against classifier-free guidance (weights w) on "
        "Fashion-MNIST: class FD, overall FD and class accuracy per row; resumable, tables and a "
        "plot in --out");
    sub_->add_option("--spec", a_.spec_file, "JSON spec file with the same field names");
    a_.flags.add_to(sub_, guidance_spec_schema());
    add_study_options(sub_, a_.out, a_.fresh, a_.quiet, a_.json);
  }
  int run(const std::string&, std::ostream& out, std::ostream& err) override {
    return cmd_guidance_table(a_, out, err);
  }

 private:
  GuidanceArgs a_;
};
}  // namespace

std::unique_ptr<Command> make_guidance_table_command() {
  return std::make_unique<GuidanceTableCommand>();
}

}  // namespace sdekit
