// `sdekit fid-table`: samplers x NFE -> Frechet distance and KID in a stated feature space.
#include <cmath>
#include <filesystem>
#include <ostream>
#include <stdexcept>

#include "apps/cli_common.hpp"
#include "apps/command.hpp"
#include "apps/plot.hpp"
#include "experiments/features.hpp"
#include "experiments/fid_table.hpp"
#include "models/resources.hpp"

namespace sdekit {
namespace {
using namespace cli;

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
  if (given("--nfe")) spec.nfe = parse_nfe_list(a.nfe_list);
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

class FidTableCommand final : public Command {
 public:
  void add_to(CLI::App& app) override {
    sub_ = app.add_subcommand(
        "fid-table",
        "Samplers x NFE -> Frechet distance and KID to a reference set in a stated feature space; "
        "resumable (results.jsonl), tables, statistics (.npz) and a plot in --out");
    sub_->add_option("--spec", a_.spec_file, "JSON spec file with the same field names");
    sub_->add_option("--model", a_.spec.model, model_spec_help())->capture_default_str();
    sub_->add_option("--sde", a_.spec.sde, "SDE / schedule")->capture_default_str();
    sub_->add_option("--samplers", a_.spec.samplers, "Samplers, comma separated")
        ->delimiter(',')
        ->default_str("ddim,dpmpp-2m,dpmpp-3m,unipc-2,heun,euler-maruyama,ancestral");
    sub_->add_option("--nfe", a_.nfe_list, "NFE list, comma separated")->default_str("5,10,20,50");
    sub_->add_option("--n", a_.spec.n, "Samples per cell")->capture_default_str();
    sub_->add_option("--seed", a_.spec.seed, "Seed of x_T and the sampler noise (every cell)")
        ->capture_default_str();
    sub_->add_option("--dtype", a_.spec.dtype, "float32 | float64")->capture_default_str();
    sub_->add_option("--grid", a_.spec.grid, "Time grid (default: the schedule's)");
    sub_->add_option("--t-end", a_.spec.t_end, "End time in (0, T) (default: the SDE's)");
    std::string features = "Feature space:";
    for (const auto& k : feature_space_kinds()) features += " " + k.name + " (" + k.summary + ");";
    features.pop_back();
    sub_->add_option("--features", a_.spec.features, features)->capture_default_str();
    sub_->add_option("--reference", a_.spec.reference,
                     "mixture (exact samples) | toy:NAME (exact samples of a 2-D toy set) | "
                     "fashion-mnist (test set) | npy:FILE.npy (data set) | "
                     "stats:FILE.npz (mu, sigma)")
        ->capture_default_str();
    sub_->add_option("--n-ref", a_.spec.n_ref,
                     "Exact reference samples (references mixture, toy:NAME)")
        ->capture_default_str();
    sub_->add_option("--kid-subsets", a_.spec.kid_subsets, "KID: subsets")->capture_default_str();
    sub_->add_option("--guidance", a_.spec.guidance,
                     "Class-conditional models (balanced classes): guidance weight")
        ->capture_default_str();
    sub_->add_option("--kid-subset-size", a_.spec.kid_subset_size, "KID: subset size")
        ->capture_default_str();
    add_study_options(sub_, a_.spec.param, a_.spec.event_shape, a_.out, a_.fresh, a_.quiet,
                      a_.json);
  }
  int run(const std::string&, std::ostream& out, std::ostream& err) override {
    return cmd_fid_table(a_, *sub_, out, err);
  }

 private:
  FidArgs a_;
};
}  // namespace

std::unique_ptr<Command> make_fid_table_command() {
  return std::make_unique<FidTableCommand>();
}

}  // namespace sdekit
