#pragma once
// The checks every study's spec shares (SDE, samplers, NFE list, dtype, t_end, grid), with the
// field named in each message. Private to experiments/.
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "experiments/detail/spec_fields.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/registry.hpp"

namespace sdekit::detail {

/// Returns the SDE; throws std::invalid_argument naming the first bad field.
inline SDEPtr check_common_fields(const std::string& sde_name,
                                  const std::vector<std::string>& samplers,
                                  const std::vector<int>& nfe, const std::string& dtype,
                                  double t_end, const std::string& grid) {
  const SDEPtr sde = with_field("sde", [&] { return make_sde(sde_name); });
  if (!sde->schedule())
    throw std::invalid_argument("field 'sde': '" + sde_name +
                                "' has no Gaussian kernel, which the mixture models need");
  std::set<std::string> seen;
  for (const auto& s : samplers) {
    with_field("samplers", [&] { return make_sampler(s); });
    if (!seen.insert(s).second)
      throw std::invalid_argument("field 'samplers': '" + s + "' is listed twice");
  }
  if (nfe.empty()) throw std::invalid_argument("field 'nfe': the list is empty");
  for (int v : nfe)
    if (v <= 0)
      throw std::invalid_argument("field 'nfe': every NFE must be >= 1, got " + std::to_string(v));
  if (dtype != "float32" && dtype != "float64")
    throw std::invalid_argument("field 'dtype': expected float32 or float64, got '" + dtype + "'");
  const Interval d = sde->domain();
  if (t_end >= 0 && !(t_end > d.lo && t_end < d.hi)) {
    std::ostringstream os;
    os << "field 't_end': must lie in (" << d.lo << ", " << d.hi << ") for SDE " << sde_name
       << ", got " << t_end;
    throw std::invalid_argument(os.str());
  }
  if (!grid.empty()) with_field("grid", [&] { return parse_grid(grid); });
  return sde;
}

}  // namespace sdekit::detail
