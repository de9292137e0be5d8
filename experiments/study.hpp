#pragma once
// What every study (converge, fid-table, and those to come) reports while it runs.
#include <cstddef>
#include <functional>
#include <string>

namespace sdekit {

struct StudyProgress {
  std::size_t done = 0, total = 0;  // cells computed in this run, of those it will compute
  std::string cell;  // the cell about to run, preparatory work ("ODE reference"), or "" at the end
  double elapsed = 0.0;  // seconds since the study started
  double eta = -1.0;     // seconds left, estimated from the cost done so far (< 0: unknown)
};
using StudyProgressFn = std::function<void(const StudyProgress&)>;

}  // namespace sdekit
