#pragma once
// NFE-vs-FD tables: for every (sampler, NFE) cell, n samples from one model and SDE, their
// features, and the Frechet distance (docs/theory.md section 6) and KID to a reference set in the
// same feature space. Resumable cell by cell (ResultsStore).
//
// Protocol, stated with every result: every cell draws its n samples from the same x_T (seed)
// with the same sampler noise seed, so cells differ only by the sampler and its NFE; features
// are "data" (the samples themselves) or a TorchScript network; the reference is
//   - "mixture": n_ref exact samples of the model's noised marginal p(t_end) (seed-derived);
//   - "toy:NAME": n_ref exact samples of a 2-D toy set (two-moons, swiss-roll, checkerboard)
//     noised to t_end, alpha x0 + sigma z (seed-derived);
//   - "fashion-mnist": the 10000 Fashion-MNIST test images;
//   - "npy:FILE": a data set [N, ...] (all N rows);
//   - "stats:FILE.npz": statistics in pytorch-fid's layout (mu, sigma): FD only, no KID;
// and the floor is what an exact sampler would score at this n: the distance of n further
// reference samples to the reference set (mixture, toy: a second exact draw of n against the n_ref
// reference samples; data sets: n random rows against the other N - n rows, when N >= 2n), the
// level below which no sampler can be told apart at this n.
// Statistics accumulate in float64 (GaussianStats); each cell's statistics are saved as
// stats/CELL.npz (pytorch-fid layout plus n), the reference's as reference_stats.npz.
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "experiments/spec_schema.hpp"
#include "experiments/study.hpp"

namespace sdekit {

struct FidTableSpec {
  std::string model = "gmm64";
  std::string sde = "vp-linear";
  std::vector<std::string> samplers = {"ddim", "dpmpp-2m",       "dpmpp-3m", "unipc-2",
                                       "heun", "euler-maruyama", "ancestral"};
  std::vector<int> nfe = {5, 10, 20, 50};
  int64_t n = 2000;  // samples per cell
  uint64_t seed = 0;
  /// "rows" (row-keyed x_T and noise: a cell's samples do not depend on how its rows are split
  /// over processes) | "generator" (one generator per cell, one process only).
  std::string rng = "rows";
  std::string dtype = "float32";
  std::string grid;     // empty: the schedule's default
  double t_end = -1.0;  // < 0: the SDE's default
  std::string features = "data";
  std::string reference = "mixture";
  int64_t n_ref = 10000;  // "mixture" and "toy:NAME" references: exact samples
  int kid_subsets = 20;
  int64_t kid_subset_size = 1000;  // capped at min(n, reference rows)
  double guidance = 0.0;           // class-conditional models: classifier-free guidance weight
  std::string param;               // TorchScript models: what forward returns (eps, x0, v, ...)
  std::string event_shape;         // TorchScript models: one sample's shape, "2" or "1,28,28"
  /// A reference implementation's conventions for every sampler (solvers/compat.hpp): empty or
  /// "none", "k-diffusion" (its options, and the step to sigma = 0 as one of each cell's NFE) or
  /// "dpm-solver".
  std::string compat;
  /// Classifier guidance (networks/guidance_classifiers.hpp): a classifier spec, empty for none;
  /// its scale s; the class (-1: balanced classes; also the class of class-conditional models);
  /// 1 to run a class-conditional model from its null label.
  std::string classifier;
  double classifier_scale = 1.0;
  int64_t label = -1;
  int unconditional = 0;
};

/// Throws std::invalid_argument naming the field for unknown model / SDE / sampler / grid /
/// feature space / reference kind, NFE <= 0, n < 2, n_ref < 2, KID settings < 1 (subset size < 2),
/// a bad dtype or t_end, or a reference file that does not exist.
void validate(const FidTableSpec& spec);
/// Every field of the spec, once: JSON names, flags and their help follow from it.
const SpecSchema<FidTableSpec>& fid_spec_schema();
std::string fid_spec_json(const FidTableSpec& spec);
/// Same field names as the flags ('-' or '_'); errors name `source` and the field.
FidTableSpec fid_spec_from_json(const std::string& text, const std::string& source);

struct FidCell {
  std::string sampler;
  int target_nfe = 0;
  int steps = 0;
  int64_t nfe = 0;  // model calls per sample batch
  double fd = std::numeric_limits<double>::quiet_NaN();
  double kid = std::numeric_limits<double>::quiet_NaN(), kid_se = 0.0;
  double seconds = 0.0;
  std::string failure;
  bool resumed = false;
  std::string key() const;  // "ddim/nfe=10"
};

struct FidTableReport {
  FidTableSpec spec;
  std::string grid, feature_space, reference;
  double t_end = 0.0;
  int64_t feature_dim = 0, reference_rows = 0;
  double floor_fd = std::numeric_limits<double>::quiet_NaN();  // NaN: not available
  double floor_kid = std::numeric_limits<double>::quiet_NaN(), floor_kid_se = 0.0;
  std::string floor_note;
  std::vector<FidCell> cells;
  std::size_t resumed = 0, computed = 0;
  /// Over several processes: the bytes every rank sent through collectives and the store for
  /// this run's cells, summed over the ranks (0 in one process).
  uint64_t bytes_sent = 0;
};

using FidProgress = StudyProgress;

FidTableReport run_fid_table(const FidTableSpec& spec, const std::string& out_dir, bool fresh,
                             const std::function<void(const FidProgress&)>& progress = {});

/// The protocol paragraph, the FD table (rows: samplers, columns: NFE) and the KID table.
std::string fid_protocol(const FidTableReport& report);
std::string fid_markdown(const FidTableReport& report);
std::string fid_report_json(const FidTableReport& report);
/// results.csv and results.md in out_dir.
void write_fid_tables(const FidTableReport& report, const std::string& out_dir);

}  // namespace sdekit
