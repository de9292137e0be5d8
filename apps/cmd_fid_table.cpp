// `sdekit fid-table`: samplers x NFE -> Frechet distance and KID in a stated feature space.
#include <cmath>
#include <filesystem>
#include <ostream>
#include <stdexcept>

#include "apps/cli_common.hpp"
#include "apps/command.hpp"
#include "apps/plot.hpp"
#include "apps/spec_flags.hpp"
#include "experiments/distributed.hpp"
#include "experiments/features.hpp"
#include "experiments/fid_table.hpp"
#include "models/resources.hpp"

namespace sdekit {
namespace {
using namespace cli;

struct FidArgs {
  std::string spec_file;
  SpecFlags<FidTableSpec> flags;
  std::string out = "out/fid-table";
  bool fresh = false, quiet = false, json = false;
};

int cmd_fid_table(FidArgs& a, std::ostream& out, std::ostream& err) {
  FidTableSpec spec;
  if (!a.spec_file.empty()) {
    spec = fid_spec_from_json(read_text_file(a.spec_file, "--spec"), a.spec_file);
  }
  a.flags.apply(spec);  // flags given on the command line override the spec file
  validate(spec);

  ProgressLine line(err, a.quiet || !dist::writer());  // rank 0 alone reports
  const FidTableReport rep = run_fid_table(spec, a.out, a.fresh, [&](const FidProgress& p) {
    line.update(p.done, p.total, p.cell.empty() ? std::string("done") : p.cell, p.elapsed, p.eta);
  });
  line.finish();
  if (!dist::writer()) return 0;  // rank 0 alone writes the results folder
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
  if (dist::active())
    out << "Communicated over " << dist::world() << " processes: " << rep.bytes_sent
        << " bytes for " << rep.computed << " cells ("
        << (rep.computed ? rep.bytes_sent / rep.computed : 0) << " bytes per cell).\n";
  if (!plot_note.empty()) out << plot_note << "\n";
  return 0;
}

class FidTableCommand final : public Command {
 public:
  void add_to(CLI::App& app) override {
    sub_ = app.add_subcommand(
        "fid-table",
        "Samplers x NFE -> Frechet distance and KID to a reference set in a stated feature space; "
        "resumable (results.jsonl), tables, statistics (.npz) and a plot in --out");
    sub_->add_option("--spec", a_.spec_file, "JSON spec file with the same field names");
    a_.flags.add_to(sub_, fid_spec_schema());
    add_study_options(sub_, a_.out, a_.fresh, a_.quiet, a_.json);
  }
  int run(const std::string&, std::ostream& out, std::ostream& err) override {
    return cmd_fid_table(a_, out, err);
  }
  bool shards() const override { return true; }

 private:
  FidArgs a_;
};
}  // namespace

std::unique_ptr<Command> make_fid_table_command() {
  return std::make_unique<FidTableCommand>();
}

}  // namespace sdekit
