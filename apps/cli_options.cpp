// The option groups of apps/cli_common.hpp: the sampler's flags (generated from
// sampler_option_specs()) and the learned models' flags.
#include <cmath>
#include <stdexcept>

#include "apps/cli_common.hpp"
#include "experiments/distributed.hpp"

#include "networks/guidance_classifiers.hpp"
#include "solvers/compat.hpp"

namespace sdekit::cli {

void SamplerArgs::check(bool nfe_given) const {
  if (nfe_given) check_count("--nfe", nfe, 1, kMaxSteps);
}

SamplerOptions SamplerArgs::options(bool nfe_given, bool to_zero) const {
  std::map<std::string, std::string> given =
      compat_sampler_options(parse_compat(compat), sampler_info(sampler).name);
  for (const auto& [name, opt] : flags)
    if (opt->count() > 0) given[name] = switches.count(name) ? "true" : values.at(name);
  SamplerOptions o = sampler_options_for(sampler, given);
  if (nfe_given) o.nfe_budget = to_zero ? nfe - 1 : nfe;
  return o;
}

bool SamplerArgs::compat_to_zero() const {
  return sdekit::compat_to_zero(parse_compat(compat));
}

std::string nfe_note(const SamplerArgs& s, const Sampler& sampler, int64_t spent) {
  if (spent == s.nfe) return "";
  return " (--nfe " + std::to_string(s.nfe) + " is not spent exactly: " + s.sampler + " takes " +
         std::to_string(sampler.nfe_per_step()) + " NFE per step" +
         (s.sampler.rfind("dpm-solver-", 0) == 0
              ? "; dpm-solver-fast spends any budget of at least 3 exactly"
              : "") +
         ")";
}

void add_sampler_options(CLI::App* c, SamplerArgs& a) {
  c->add_option("--sampler", a.sampler, "Sampler (see `sdekit list`)")->capture_default_str();
  c->add_option("--compat", a.compat,
                "Conventions of a reference implementation: none | k-diffusion (grids end with "
                "the step to sigma = 0, its lower-order and lms rules) | dpm-solver (the official "
                "singlestep rule, reference 3M, the official adaptive controller); explicit flags "
                "win")
      ->capture_default_str();
  c->add_option("--nfe", a.nfe,
                "NFE budget: sets the steps (and dpm-solver-fast's order schedule); not with "
                "--steps");
  for (const auto& spec : sampler_option_specs()) {
    std::string takers;
    for (const auto& info : sampler_registry())
      for (const auto& o : info.options)
        if (o == spec.name) takers += (takers.empty() ? "" : ", ") + info.name;
    const std::string help =
        spec.meaning + (spec.range.empty() ? "" : "; " + spec.range) + " (" + takers + ")";
    if (spec.type == "flag") {
      a.switches[spec.name] = false;
      a.flags[spec.name] = c->add_flag("--" + spec.name, a.switches[spec.name], help);
    } else {
      a.values[spec.name] = spec.default_value;
      a.flags[spec.name] = c->add_option("--" + spec.name, a.values[spec.name], help)
                               ->default_str(spec.default_value);
    }
  }
}

int cli_steps(const SamplerArgs& s, const Sampler& sampler, int steps, bool steps_given,
              bool nfe_given, bool grid_given, bool to_zero) {
  if (steps_given && nfe_given)
    throw std::invalid_argument("--steps " + std::to_string(steps) + " and --nfe " +
                                std::to_string(s.nfe) +
                                " conflict: give one (--nfe sets the steps from the NFE budget)");
  if (sampler.adaptive() && (steps_given || nfe_given || grid_given))
    throw std::invalid_argument(std::string(steps_given ? "--steps"
                                            : nfe_given ? "--nfe"
                                                        : "--grid") +
                                " does not apply to --sampler " + s.sampler +
                                ": it is adaptive and chooses its own steps (its options: " +
                                sampler_option_list(sampler_info(s.sampler)) + ")");
  if (!nfe_given) return steps;
  if (!to_zero || sampler.adaptive()) return sampler.steps_for_nfe(s.nfe);
  if (s.nfe < 2)
    throw std::invalid_argument("--nfe " + std::to_string(s.nfe) +
                                " leaves nothing for the grid: the step to sigma = 0 takes one "
                                "model call, the grid's first step at least one more");
  return 1 + sampler.steps_for_nfe(s.nfe - 1);
}

ModelOptions ModelArgs::options() const {
  ModelOptions o;
  o.param = param;
  if (!event_shape.empty())
    for (double v : parse_number_list(event_shape, "--event-shape")) {
      if (v < 1 || v != std::floor(v))
        throw std::invalid_argument("--event-shape: sizes must be positive integers, got " +
                                    fmt(v));
      o.event_shape.push_back(static_cast<int64_t>(v));
    }
  o.label = label;
  if (!std::isfinite(guidance))
    throw std::invalid_argument("--guidance must be finite, got " + fmt(guidance));
  o.guidance = guidance;
  if (!std::isfinite(classifier_scale))
    throw std::invalid_argument("--classifier-scale must be finite, got " + fmt(classifier_scale));
  o.classifier = classifier;
  o.classifier_scale = classifier_scale;
  o.unconditional = unconditional;
  check_device(device);
  // Over several processes plain "cuda" is this rank's GPU, cuda:LOCAL_RANK.
  o.device =
      device == "cuda" && dist::active() ? "cuda:" + std::to_string(dist::local_rank()) : device;
  return o;
}

void add_model_options(CLI::App* c, ModelArgs& m) {
  c->add_option("--param", m.param, "torchscript models: eps | x0 | v | score | denoiser | flow");
  c->add_option("--event-shape", m.event_shape,
                "torchscript models: one sample's shape, e.g. 2 or 1,28,28");
  c->add_option("--class", m.label,
                "Class-conditional models: a class, -1 for balanced classes, K for none")
      ->capture_default_str();
  c->add_option("--guidance", m.guidance,
                "Classifier-free guidance weight w (0: none; w != 0 doubles the NFE)")
      ->capture_default_str();
  c->add_option("--device", m.device, "cpu | cuda (learned models)")->capture_default_str();
  auto* clf = c->add_option(
      "--classifier", m.classifier,
      "Classifier guidance toward --class (-1: balanced classes): " + classifier_spec_help());
  c->add_option("--classifier-scale", m.classifier_scale,
                "Classifier guidance scale s: score + s grad log p(class | x_t)")
      ->capture_default_str()
      ->needs(clf);
  c->add_flag("--unconditional", m.unconditional,
              "Classifier guidance of a class-conditional model from its null label");
}

LoadedModel load_cli_model(const std::string& spec, const SchedulePtr& kernel, const ModelArgs& m,
                           int64_t& D) {
  LoadedModel lm = load_model(spec, kernel, m.options());
  if (lm.mixture && m.device != "cpu")
    throw std::invalid_argument("--device " + m.device + ": model '" + spec +
                                "' is analytic and runs on the CPU; --device applies to learned "
                                "models");
  D = 1;
  for (int64_t v : lm.event_shape) D *= v;
  return lm;
}

void add_study_options(CLI::App* c, std::string& out, bool& fresh, bool& quiet, bool& json) {
  c->add_option("--out", out, "Output folder")->capture_default_str();
  c->add_flag("--fresh", fresh, "Start over: discard the results stored in --out");
  c->add_flag("--quiet", quiet, "No progress line on stderr");
  c->add_flag("--json", json, "Print the report as JSON instead of tables");
}

}  // namespace sdekit::cli
