#pragma once
// Time grids for sampling: steps + 1 strictly decreasing times from t_start (noise side,
// usually T) to t_end (data side). grid[0] == t_start and grid[steps] == t_end exactly.
#include <string>
#include <string_view>
#include <vector>

#include "schedules/noise_schedule.hpp"

namespace sdekit {

enum class GridKind {
  UniformT,         // t_i = t_start + (i/N)(t_end - t_start)
  UniformLambda,    // lambda uniform between lambda(t_start) and lambda(t_end) (logSNR)
  Quadratic,        // sqrt(t) uniform (DPM-Solver's "time_quadratic")
  Karras,           // (s_max^(1/rho) + (i/N)(s_min^(1/rho) - s_max^(1/rho)))^rho in s = sigma/alpha
  DdpmUniform,      // integer knots n of a vp-discrete table, evenly spaced (rounded)
  DdpmQuadratic,    // integer knots n, quadratic in n (DDIM's "quad" skip)
  KlOptimal,        // atan(s) uniform in s = sigma/alpha (Align Your Steps' KL-optimal schedule)
  Beta,             // t at the Beta(0.6, 0.6) quantiles of 1 - i/N (Lee et al. 2024)
  LinearQuadratic,  // Mochi's schedule: linear through the first 2.5% of [t_end, T], then quadratic
  AysSd1,           // Align Your Steps' tabulated sigmas for Stable Diffusion 1.5 (vp-sd)
  AysSdxl,          // Align Your Steps' tabulated sigmas for SDXL (vp-sd)
  AysSvd,  // Align Your Steps' tabulated sigmas for Stable Video Diffusion (sigma 0.002..700)
  File,    // "file:GRID.json": stored times (GridOptions::file)
};

struct GridInfo {
  GridKind kind;
  std::string name;
  std::string summary;
};

/// Every grid kind with its name and one-line meaning.
const std::vector<GridInfo>& grid_registry();
/// Parses a grid name ("file:PATH" gives File and checks the file); unknown names throw
/// std::invalid_argument listing the valid ones.
GridKind parse_grid(std::string_view name);
std::string grid_name(GridKind kind);
/// The grid a schedule samples best with by default: Karras for EDM, uniform-t otherwise.
GridKind default_grid(const NoiseSchedule& schedule);

struct GridOptions {
  double rho = 7.0;  // Karras exponent
  /// Optional group sizes summing to `steps` (a singlestep sampler's orders under DPM-Solver's
  /// official rule, docs/theory.md section 4.5): on a uniform-lambda grid the groups' boundaries
  /// are uniform in lambda and so is each group's interior (DPM-Solver's logSNR rule: K + 1
  /// outer points, fixed ratios inside); every other kind ignores them (its nodes already are the
  /// official inner points).
  std::vector<int> groups;
  /// GridKind::File: the grid file's path.
  std::string file;
};

/// A grid name with its file: "file:PATH" gives {File, PATH}, a name of grid_registry() {kind,
/// ""}. A grid file is read and checked here (errors name the file).
struct GridChoice {
  GridKind kind = GridKind::UniformT;
  std::string file;
};
GridChoice parse_grid_choice(std::string_view name);
/// The file of a "file:PATH" grid name, "" for any other name.
inline std::string grid_file_of(const std::string& name) {
  return name.rfind("file:", 0) == 0 ? name.substr(5) : std::string();
}

/// A grid file: JSON {"times": [t_0, ..., t_K], ...} with t_0 the start (noise side) and t_K
/// the end, strictly decreasing and finite. Throws std::invalid_argument naming the file and
/// the entry.
std::vector<double> read_grid_file(const std::string& path);
/// Writes {"times": times, "sde": sde} merged with `extra` (a JSON object's text, may be empty).
void write_grid_file(const std::string& path, const std::vector<double>& times,
                     const std::string& sde, const std::string& extra = "");

/// Align Your Steps' 10-step table of sigma/alpha for an Ays* kind (11 values, decreasing).
const std::vector<double>& ays_table(GridKind kind);

/// Builds the grid. Throws std::invalid_argument for steps < 1, t_end not in (lo, t_start),
/// t_start outside the domain, rho <= 0, DDPM grids on a schedule that is not vp-discrete or with
/// more steps than integer knots between t_end and t_start, a grid file with another number of
/// steps or other ends than the run's, an Align Your Steps grid on a run whose sigma/alpha range is
/// not its table's (within 0.1%).
std::vector<double> make_time_grid(GridKind kind, const NoiseSchedule& schedule, int steps,
                                   double t_start, double t_end, const GridOptions& opt = {});

}  // namespace sdekit
