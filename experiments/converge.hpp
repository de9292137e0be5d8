#pragma once
// Convergence studies: error against NFE for many samplers on one model and SDE, the empirical
// order of each sampler (docs/theory.md section 6), resumable cell by cell (ResultsStore).
//
// Every sampler starts from the same x_T (n rows drawn with `seed`) and integrates from T to
// t_end on the spec's grid kind. A cell is one (sampler, NFE) pair, or (sampler, tolerance) for
// adaptive samplers, whose NFE is what they spent. Errors of a cell:
//   rms  = sqrt(mean over rows and coordinates of (x - x_ref)^2),  max = max |x - x_ref|,
// where x_ref is
//   - deterministic samplers: the probability-flow ODE solution from the same x_T: the closed
//     form when the model is a single Gaussian, else dopri5 at rtol = atol = ref_tol (its own
//     error estimate is reported as the floor: see reference_solve);
//   - stochastic samplers whose every noise draw comes from the Brownian path (euler-maruyama,
//     ancestral, sde-dpmpp-2m, sra, the ancestral and SDE samplers in sigma, sa-solver with tau = 1,
//     er-sde with phi = sigma^2): the strong error against SRA with sde_ref_steps steps on the same
//     Brownian path (a VirtualBrownianTree seeded by `seed`); floor: max |x_ref - x_ref/2|, the
//     difference to SRA at half the steps. Other stochastic samplers (Langevin correctors) get
//     no strong error (NaN), only the weak one.
// Weak errors of every cell: the sample mean and covariance against the exact moments of the
// noised mixture at t_end (mean_err = ||m_hat - m||_2, cov_err = ||C_hat - C||_F / ||C||_F),
// with the same statistics of n exact samples as their sampling floor.
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "experiments/order_fit.hpp"
#include "experiments/spec_schema.hpp"
#include "experiments/study.hpp"

namespace sdekit {

struct ConvergeSpec {
  std::string model = "gmm64";
  std::string sde = "vp-linear";
  std::vector<std::string> samplers;  // empty: default_converge_samplers()
  // Log-spaced up to 800: on gmm64 the low-order samplers leave the pre-asymptotic regime
  // (where a few rows still end in another mode than the reference's) only beyond NFE 100.
  std::vector<int> nfe = {5, 8, 12, 20, 32, 50, 80, 125, 200, 320, 500, 800};
  std::vector<double> tolerances = {1e-3, 1e-4, 1e-5, 1e-6};  // adaptive samplers
  int64_t n = 32;                                             // batch size (rows of x_T)
  uint64_t seed = 0;
  std::string dtype = "float64";
  double t_end = -1.0;                  // < 0: the SDE's default
  std::string grid = "uniform-lambda";  // empty: the schedule's default
  double ref_tol = 1e-10;
  int sde_ref_steps = 2048;
  std::string param;        // TorchScript models: what forward returns (eps, x0, v, ...)
  std::string event_shape;  // TorchScript models: one sample's shape, "2" or "1,28,28"
  /// A reference implementation's sampler conventions (solvers/compat.hpp): empty or "none",
  /// "k-diffusion", "dpm-solver". Their options only: a study measures against the exact PF-ODE
  /// solution at t_end, so no run takes k-diffusion's step to sigma = 0.
  std::string compat;
  /// Classifier guidance (networks/guidance_classifiers.hpp): a classifier spec, empty for none;
  /// its scale s; the class (-1: balanced classes; also the class of class-conditional models);
  /// 1 to run a class-conditional model from its null label.
  std::string classifier;
  double classifier_scale = 1.0;
  int64_t label = -1;
  int unconditional = 0;
};

/// Every deterministic sampler of the registry, the deterministic limits of er-sde and sa-solver
/// ("er-sde:er-sde-noise=ode", "sa-solver:sa-tau=0"), then the SDE discretizations with a strong
/// error (euler-maruyama, ancestral, sde-dpmpp-2m, sra, the ancestral and SDE samplers in sigma,
/// sa-solver, "er-sde:er-sde-noise=sde").
std::vector<std::string> default_converge_samplers();

/// Throws std::invalid_argument naming the field for: unknown model, SDE, sampler or grid; an
/// empty or non-positive NFE list; tolerances outside (0, 1); n < 2; dtype other than float32 /
/// float64; t_end outside the SDE's domain; ref_tol <= 0; sde_ref_steps < 2.
void validate(const ConvergeSpec& spec);

/// Every field of the spec, once: JSON names, flags and their help follow from it.
const SpecSchema<ConvergeSpec>& converge_spec_schema();

/// The spec as a JSON object with every field present (samplers resolved to the default list
/// when empty); this is what spec.json holds.
std::string converge_spec_json(const ConvergeSpec& spec);
/// Parses a spec file's text (the same field names as the flags, with '_' or '-'; missing
/// fields keep their defaults). Errors name `source`, the field, what was expected and what
/// was found; unknown fields are refused with the list of valid ones.
ConvergeSpec converge_spec_from_json(const std::string& text, const std::string& source);

/// How a cell's sampler runs and is judged: fixed steps of a deterministic sampler against the
/// PF-ODE reference ("ode"), fixed steps of a stochastic one ("sde"), or adaptive steps at a
/// tolerance ("adaptive").
enum class CellKind { Ode, Sde, Adaptive };
/// "ode", "sde", "adaptive".
std::string cell_kind_name(CellKind kind);
/// The kind of that name; any other throws std::invalid_argument listing the valid ones.
CellKind parse_cell_kind(std::string_view name);
/// A kind compares equal to its name, so that `cell.kind == "adaptive"` reads as it did when
/// kinds were strings.
inline bool operator==(CellKind kind, std::string_view name) {
  return cell_kind_name(kind) == name;
}
inline bool operator!=(CellKind kind, std::string_view name) {
  return !(kind == name);
}
std::ostream& operator<<(std::ostream& os, CellKind kind);

struct ConvergeCell {
  std::string sampler;
  CellKind kind = CellKind::Ode;
  int target_nfe = 0;  // fixed-step cells: the NFE asked for
  double tol = 0.0;    // adaptive cells: rtol = atol
  int steps = 0;       // steps taken (adaptive: accepted steps)
  int64_t nfe = 0;     // model calls actually spent
  double rms = std::numeric_limits<double>::quiet_NaN();
  double max = std::numeric_limits<double>::quiet_NaN();
  double mean_err = 0.0, cov_err = 0.0;
  double seconds = 0.0;
  std::string failure;   // non-empty when the run failed (e.g. non-finite values): no errors
  bool resumed = false;  // read back from results.jsonl instead of computed in this run
  /// "heun/nfe=20", "dopri5/tol=1e-05".
  std::string key() const;
};

struct ReferenceInfo {
  std::string method;           // e.g. "closed form", "dopri5 rtol=atol=1e-10", "sra 2048 steps"
  double error_estimate = 0.0;  // max-norm estimate of the reference's own error (0: exact)
  int64_t nfe = 0;
  double seconds = 0.0;
  bool cached = false;  // read back from the output folder
};

struct SamplerSummary {
  std::string sampler;
  CellKind kind = CellKind::Ode;
  double declared_order = 0.0;
  bool fitted = false;           // at least two cells with finite positive rms
  OrderFit fit;                  // over the automatically chosen range (indices into `nfe`/`rms`)
  std::vector<double> nfe, rms;  // the cells used for fitting, sorted by NFE
  double floor = 0.0;            // the reference's error estimate the fit avoided
  std::string note;              // e.g. cells skipped because an NFE buys no step
};

struct ConvergeReport {
  ConvergeSpec spec;  // resolved: samplers filled in
  std::string grid;   // grid kind used
  double T = 0.0, t_end = 0.0;
  int64_t dim = 0;
  ReferenceInfo ode_reference, sde_reference;        // method empty when not needed
  double floor_mean_err = 0.0, floor_cov_err = 0.0;  // n exact samples of p(t_end)
  std::vector<ConvergeCell> cells;                   // in plan order
  std::vector<SamplerSummary> summaries;             // in spec.samplers order
  std::size_t resumed = 0, computed = 0;
};

using ConvergeProgress = StudyProgress;

/// Runs (or resumes) the study in `out_dir`: spec.json, results.jsonl (one line per finished
/// cell, flushed at once), reference.npy / reference.json and sde_reference.npy /
/// sde_reference.json (the references, reused on resume). fresh: starts over. Finished cells are
/// skipped; a different stored spec is refused (ResultsStore). Throws std::invalid_argument
/// for a bad spec before any work.
ConvergeReport run_converge(const ConvergeSpec& spec, const std::string& out_dir, bool fresh,
                            const std::function<void(const ConvergeProgress&)>& progress = {});

/// Writes results.csv (one row per cell) and results.md (protocol, error table, orders).
void write_converge_tables(const ConvergeReport& report, const std::string& out_dir);

/// The report as a JSON object (spec, references, cells, fitted orders), for --json.
std::string converge_report_json(const ConvergeReport& report);

/// The protocol: model, SDE, grid, times, batch, seed, dtype, the references and their floors.
std::string converge_protocol(const ConvergeReport& report);

/// The per-sampler order table and the error-vs-NFE table as Markdown (what stdout shows).
std::string converge_markdown(const ConvergeReport& report);

}  // namespace sdekit
