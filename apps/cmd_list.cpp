// `sdekit list`: every registry entry (schedules, grids, samplers with their options, models).
#include <iomanip>
#include <ostream>

#include "apps/cli_common.hpp"
#include "apps/command.hpp"
#include "experiments/features.hpp"
#include "networks/guidance_classifiers.hpp"
#include "networks/loader.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/registry.hpp"

namespace sdekit {
namespace {
using namespace cli;

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
    const std::string kind = sm->adaptive()      ? "adaptive"
                             : sm->consistency() ? "consistency"
                             : sm->stochastic()  ? "stochastic"
                                                 : "deterministic";
    out << "  " << std::left << std::setw(20) << s.name << std::right << std::setw(6)
        << (sm->order() > 0 ? fmt(sm->order()) : std::string("-")) << std::setw(10)
        << sm->nfe_per_step() << "  " << kind << "  " << s.summary << "\n";
    if (!s.options.empty())
      out << "  " << std::string(38, ' ') << "options: " << sampler_option_list(s) << "\n";
  }
  out << "  (order: global order of the deterministic samplers; weak order, and strong order for "
         "additive noise, of the stochastic ones)\n";
  out << "\nSampler options (an option the chosen sampler does not take is an error):\n";
  for (const auto& o : sampler_option_specs())
    out << "  " << std::left << std::setw(20) << ("--" + o.name) << o.meaning
        << (o.range.empty() ? "" : " [" + o.range + "]") << ", default " << o.default_value << "\n";
  out << "\nFeature spaces (fid-table --features):\n";
  for (const auto& f : feature_space_kinds())
    out << "  " << std::left << std::setw(22) << f.name << f.summary << "\n";
  out << "\nModels (--model):\n";
  for (const auto& m : model_kinds())
    out << "  " << std::left << std::setw(22) << m.name << m.summary << "\n";
  out << "\nClassifiers (--classifier, classifier guidance):\n";
  for (const auto& c : classifier_kinds())
    out << "  " << std::left << std::setw(22) << c.name << c.summary << "\n";
  out << "\nParameterizations: eps, x0, v, score, denoiser, flow (converted exactly; "
         "docs/theory.md "
         "section 3)\n";
}

class ListCommand final : public Command {
 public:
  void add_to(CLI::App& app) override {
    sub_ = app.add_subcommand("list",
                              "List SDEs, time grids, samplers (order, NFE per step, options), "
                              "models");
  }
  int run(const std::string&, std::ostream& out, std::ostream&) override {
    cmd_list(out);
    return 0;
  }
};
}  // namespace

std::unique_ptr<Command> make_list_command() {
  return std::make_unique<ListCommand>();
}

}  // namespace sdekit
