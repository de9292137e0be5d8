#include "schedules/registry.hpp"

#include <stdexcept>

#include "schedules/edm.hpp"
#include "schedules/sub_vp.hpp"
#include "schedules/ve.hpp"
#include "schedules/vp_cosine.hpp"
#include "schedules/vp_discrete.hpp"
#include "schedules/vp_linear.hpp"

namespace sdekit {

const std::vector<ScheduleInfo>& schedule_registry() {
  static const std::vector<ScheduleInfo> reg = {
      {"vp-linear", "VP, beta(t) linear 0.1..20 on [0, 1] (DDPM/score-SDE)",
       [] { return SchedulePtr(std::make_shared<VPLinear>()); }},
      {"vp-cosine", "VP, cosine alpha (s = 0.008) on [0, 0.9946]",
       [] { return SchedulePtr(std::make_shared<VPCosine>()); }},
      {"vp-discrete", "VP, DDPM table of 1000 betas 1e-4..0.02, t_n = n/1000",
       [] { return SchedulePtr(std::make_shared<VPDiscrete>(VPDiscrete::linear())); }},
      {"sub-vp", "sub-VP, sigma = 1 - exp(-B(t)), beta linear 0.1..20",
       [] { return SchedulePtr(std::make_shared<SubVP>()); }},
      {"ve", "VE (NCSN), sigma 0.01..50 geometric in t on [0, 1]",
       [] { return SchedulePtr(std::make_shared<VE>()); }},
      {"edm", "EDM, alpha = 1, sigma = t on [0, 80], stops at 0.002",
       [] { return SchedulePtr(std::make_shared<EDM>()); }},
  };
  return reg;
}

SchedulePtr make_schedule(std::string_view name) {
  std::string valid;
  for (const auto& s : schedule_registry()) {
    if (s.name == name) return s.make();
    valid += (valid.empty() ? "" : ", ") + s.name;
  }
  throw std::invalid_argument("unknown SDE/schedule '" + std::string(name) + "'; valid: " + valid);
}

SDEPtr make_sde(std::string_view name) {
  return std::make_shared<AffineSDE>(make_schedule(name));
}

}  // namespace sdekit
