#include "schedules/registry.hpp"

#include <stdexcept>

#include "schedules/edm.hpp"
#include "schedules/flow.hpp"
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
      {"vp-sd",
       "VP, Stable Diffusion's scaled-linear table (sqrt(beta) linear, 0.00085..0.012, 1000 "
       "steps), t_n = n/1000",
       [] { return SchedulePtr(std::make_shared<VPDiscrete>(VPDiscrete::scaled_linear())); }},
      {"sub-vp", "sub-VP, sigma = 1 - exp(-B(t)), beta linear 0.1..20",
       [] { return SchedulePtr(std::make_shared<SubVP>()); }},
      {"ve", "VE (NCSN), sigma 0.01..50 geometric in t on [0, 1]",
       [] { return SchedulePtr(std::make_shared<VE>()); }},
      {"edm", "EDM, alpha = 1, sigma = t on [0, 80], stops at 0.002",
       [] { return SchedulePtr(std::make_shared<EDM>()); }},
      {"flow",
       "rectified flow, alpha = 1 - t, sigma = t on [0, 0.999]; flow:shift=S (SD3/Flux time "
       "shift), flow:res=HxW (SD3's resolution rule)",
       [] { return SchedulePtr(std::make_shared<FlowSchedule>()); }},
  };
  return reg;
}

namespace {
// "flow:shift=S" or "flow:res=HxW"; nullptr for other names.
SchedulePtr parse_flow(std::string_view name) {
  const std::string n(name);
  auto fail = [&](const std::string& why) {
    return std::invalid_argument("SDE '" + n + "': " + why +
                                 " (expected flow, flow:shift=S with S > 0 or flow:res=HxW)");
  };
  if (n.rfind("flow:", 0) != 0) return nullptr;
  const std::string arg = n.substr(5);
  try {
    std::size_t used = 0;
    if (arg.rfind("shift=", 0) == 0) {
      const double s = std::stod(arg.substr(6), &used);
      if (used != arg.size() - 6) throw fail("the shift is not a number");
      return std::make_shared<FlowSchedule>(s);
    }
    if (arg.rfind("res=", 0) == 0) {
      const std::string r = arg.substr(4);
      const std::size_t x = r.find('x');
      if (x == std::string::npos) throw fail("the resolution is not HxW");
      const int h = std::stoi(r.substr(0, x), &used);
      if (used != x) throw fail("the resolution is not HxW");
      const int w = std::stoi(r.substr(x + 1), &used);
      if (used != r.size() - x - 1) throw fail("the resolution is not HxW");
      return std::make_shared<FlowSchedule>(flow_resolution_shift(h, w));
    }
  } catch (const std::logic_error& e) {
    if (dynamic_cast<const std::invalid_argument*>(&e) &&
        std::string(e.what()).rfind("SDE '", 0) == 0)
      throw;
    throw fail(e.what());
  }
  throw fail("unknown option");
}
}  // namespace

SchedulePtr make_schedule(std::string_view name) {
  if (SchedulePtr f = parse_flow(name)) return f;
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
