#pragma once
// What the subcommands share: message formatting, checks of flag values, the progress line, and
// the option groups of the sampler (one flag per sampler_option_specs() entry) and of learned
// models.
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "experiments/spec_schema.hpp"
#include "models/dtype.hpp"
#include "networks/loader.hpp"
#include "solvers/registry.hpp"

namespace sdekit::cli {

/// The first line of a message, trimmed (LibTorch and CLI11 append context on further lines).
std::string one_line(const std::string& text);
/// An error message as printed: each line at most 300 characters and at most 30 lines, without
/// control characters (values echoed from hostile input can be megabytes long).
std::string clipped(const std::string& text);
std::string fmt_shape(const at::Tensor& t);
std::string fmt(double v, int prec = 4);

/// The largest step count or NFE budget a command takes.
constexpr int64_t kMaxSteps = 10'000'000;
/// flag's value must lie in [lo, hi].
void check_count(const std::string& flag, int64_t v, int64_t lo, int64_t hi);
/// "cpu", "cuda" or "cuda:K", and CUDA only where LibTorch has it.
void check_device(const std::string& device);
/// An output file is checked before any work without creating it: its folder must exist and be
/// writable, and an existing file must be a writable regular file.
void check_output_file(const std::string& flag, const std::string& path);
/// --sde with --shift S: "flow:shift=S" (S = 1 or not given: sde unchanged); throws
/// std::invalid_argument naming --shift for another SDE or S <= 0.
std::string sde_with_shift(const std::string& sde, double shift, bool given);

/// Progress on stderr: one line rewritten in place, only when stderr is a terminal.
class ProgressLine {
 public:
  ProgressLine(std::ostream& err, bool quiet);
  ~ProgressLine() { finish(); }
  bool on() const { return on_; }
  void update(std::size_t done, std::size_t total, const std::string& what, double elapsed,
              double eta);
  void finish();

 private:
  std::ostream& err_;
  bool on_;
  bool shown_ = false;
  std::size_t width_ = 0;
};

// The sampler and its options, shared by `sample` and `encode`: one flag per entry of
// sampler_option_specs(); a flag the chosen sampler does not take is an error.
struct SamplerArgs {
  std::string sampler = "heun";
  int nfe = 0;
  std::string compat = "none";  // --compat: a preset of convention options (solvers/compat.hpp)
  std::map<std::string, std::string> values;  // option name -> text as given
  std::map<std::string, CLI::Option*> flags;  // option name -> its CLI11 option
  std::map<std::string, bool> switches;       // storage of the "flag" options

  /// Checks what the flags alone can tell; `nfe_given`: --nfe was on the command line.
  void check(bool nfe_given) const;
  /// The options given on the command line over --compat's preset, checked against the
  /// sampler's own list; with `nfe_given`, --nfe is the NFE budget the sampler may spend exactly
  /// (dpm-solver-fast, dpm-solver-2), less the step to sigma = 0 with `to_zero`.
  SamplerOptions options(bool nfe_given, bool to_zero = false) const;
  /// Whether --compat asks for the step to sigma = 0 (k-diffusion).
  bool compat_to_zero() const;
};
void add_sampler_options(CLI::App* c, SamplerArgs& a);
/// "" when a run given --nfe spent exactly that many model calls, else a note saying it did not
/// and why (appended to the summary line: a budget is never rounded silently).
std::string nfe_note(const SamplerArgs& s, const Sampler& sampler, int64_t spent);

/// The step count of `sample` / `encode`: --steps or --nfe (not both), neither for the adaptive
/// samplers, which choose their own steps (nor --grid).
/// With `to_zero`, the steps include the step to sigma = 0, which takes one model call of --nfe.
int cli_steps(const SamplerArgs& s, const Sampler& sampler, int steps, bool steps_given,
              bool nfe_given, bool grid_given, bool to_zero = false);

// Options of learned models, shared by the commands that load a model.
struct ModelArgs {
  std::string param;        // torchscript
  std::string event_shape;  // torchscript: "2" or "1,28,28"
  int64_t label = -1;
  double guidance = 0;
  std::string device = "cpu";
  std::string classifier;  // classifier guidance: a classifier spec
  double classifier_scale = 1.0;
  bool unconditional = false;
  ModelOptions options() const;
};
void add_model_options(CLI::App* c, ModelArgs& m);

/// The options every study (converge, fid-table) ends with, after its spec's flags: the results
/// folder --out, --fresh, --quiet and --json.
void add_study_options(CLI::App* c, std::string& out, bool& fresh, bool& quiet, bool& json);

/// The model of `sample` and `encode` with the checks its flags need; D: values per sample.
LoadedModel load_cli_model(const std::string& spec, const SchedulePtr& kernel, const ModelArgs& m,
                           int64_t& D);

}  // namespace sdekit::cli
