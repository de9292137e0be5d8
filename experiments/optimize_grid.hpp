#pragma once
// Time grids optimized for a model (docs/theory.md section 6.1): the interior times of a K-step
// grid chosen to minimize a sampler's RMS error against the accurate PF-ODE solution on a
// calibration batch of x_T, by NLopt's BOBYQA (derivative-free, deterministic) over the log
// step sizes in lambda, then the error on a held-out batch next to the standard grids.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace sdekit {

struct OptimizeGridSpec {
  std::string model = "gmm64";
  std::string sde = "vp-linear";
  std::string sampler = "ipndm-v";
  int nfe = 10;
  int64_t n_calib = 64, n_test = 64;
  uint64_t seed = 0;                    // calibration rows from seed, held-out rows from seed + 1
  std::string init = "uniform-lambda";  // the starting grid
  int max_evals = 600;     // objective evaluations (sampler runs on the calibration rows)
  double xtol = 1e-4;      // BOBYQA's relative tolerance on the parameters
  double ref_tol = 1e-10;  // dopri5 rtol = atol of the reference
  double t_end = -1.0;     // < 0: the SDE's default
  std::string dtype = "float64";
  std::string param, event_shape;  // TorchScript models
};

struct GridScore {
  std::string grid;
  double calib_rms = std::numeric_limits<double>::quiet_NaN();
  double test_rms = std::numeric_limits<double>::quiet_NaN();
};

struct OptimizeGridReport {
  OptimizeGridSpec spec;
  int steps = 0;
  double t_start = 0, t_end = 0;
  std::vector<double> times;      // the optimized grid, t_start .. t_end
  std::vector<GridScore> scores;  // optimized first, then the standard grids
  int evals = 0;
  double seconds = 0;
  std::string stop_reason;
};

/// Throws std::invalid_argument naming the field: unknown model, SDE, sampler (or a stochastic,
/// adaptive or consistency one), nfe that buys no step, rows < 1, max_evals < 1, bad init grid;
/// std::runtime_error when sdekit was built without NLopt.
OptimizeGridReport optimize_grid(const OptimizeGridSpec& spec);
/// Whether this build has NLopt (else optimize_grid throws std::runtime_error saying so).
bool optimize_grid_available();

/// The grid file: {"times", "sde", "sampler", "nfe", "model", "calib_rms", "test_rms", ...}.
void write_optimized_grid(const OptimizeGridReport& report, const std::string& path);
std::string optimize_grid_markdown(const OptimizeGridReport& report);
std::string optimize_grid_json(const OptimizeGridReport& report);

}  // namespace sdekit
