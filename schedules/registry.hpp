#pragma once
// Built-in schedules by name, with their default parameters (docs/theory.md section 1).
#include <string>
#include <string_view>
#include <vector>

#include "schedules/noise_schedule.hpp"
#include "schedules/sde.hpp"

namespace sdekit {

struct ScheduleInfo {
  std::string name;
  std::string summary;
  SchedulePtr (*make)();
};

/// Every built-in schedule (vp-linear, vp-cosine, vp-discrete, sub-vp, ve, edm).
const std::vector<ScheduleInfo>& schedule_registry();
/// The named schedule with default parameters; unknown names list the valid ones.
SchedulePtr make_schedule(std::string_view name);
/// The affine SDE of the named schedule.
SDEPtr make_sde(std::string_view name);

}  // namespace sdekit
