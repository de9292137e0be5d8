#pragma once
// The checks every study's spec shares (SDE, samplers, NFE list, dtype, t_end, grid), with the
// field named in each message. Private to experiments/.
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "experiments/detail/spec_fields.hpp"
#include "models/dtype.hpp"
#include "networks/loader.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/registry.hpp"

namespace sdekit::detail {

/// The largest NFE (and step count) a study cell may ask for.
constexpr int kMaxNfe = 10'000'000;

/// The classifier-guidance fields of a study's spec (networks/loader.hpp, ModelOptions).
struct GuidanceFields {
  std::string classifier;
  double classifier_scale = 1.0;
  int64_t label = -1;
  int unconditional = 0;
};

/// The model options a study's spec gives: TorchScript models' `param` and `event_shape`
/// ("2" or "1,28,28"), the guidance weight of class-conditional models, and classifier guidance.
inline ModelOptions study_model_options(const std::string& param, const std::string& event_shape,
                                        double guidance = 0.0, const GuidanceFields& cg = {}) {
  ModelOptions o;
  o.param = param;
  o.guidance = guidance;
  if (cg.unconditional != 0 && cg.unconditional != 1)
    throw std::invalid_argument("field 'unconditional': 0 or 1, got " +
                                std::to_string(cg.unconditional));
  if (!cg.classifier.empty()) {
    o.classifier = cg.classifier;
    o.classifier_scale = cg.classifier_scale;
    o.unconditional = cg.unconditional == 1;
    o.label = cg.label;
  } else {
    if (cg.classifier_scale != 1.0 || cg.unconditional != 0)
      throw std::invalid_argument(std::string("field '") +
                                  (cg.unconditional != 0 ? "unconditional" : "classifier_scale") +
                                  "' applies to classifier guidance: set the field 'classifier'");
    if (cg.label != -1) o.label = cg.label;
  }
  std::stringstream ss(event_shape);
  for (std::string item; std::getline(ss, item, ',');) {
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || v < 1 || v > (1 << 24))
      throw std::invalid_argument(
          "field 'event_shape': expected positive sizes such as 2 or "
          "1,28,28, got '" +
          event_shape + "'");
    o.event_shape.push_back(v);
  }
  return o;
}

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
    if (v <= 0 || v > kMaxNfe)
      throw std::invalid_argument("field 'nfe': every NFE must lie in [1, " +
                                  std::to_string(kMaxNfe) + "], got " + std::to_string(v));
  with_field("dtype", [&] { return parse_dtype(dtype); });
  const Interval d = sde->domain();
  // -1 is the stored form of "the SDE's default"; any other value must lie inside the domain.
  if (t_end != -1.0 && !(t_end > d.lo && t_end < d.hi)) {
    std::ostringstream os;
    os << "field 't_end': must lie in (" << d.lo << ", " << d.hi << ") for SDE " << sde_name
       << ", got " << t_end;
    throw std::invalid_argument(os.str());
  }
  if (!grid.empty()) with_field("grid", [&] { return parse_grid(grid); });
  return sde;
}

}  // namespace sdekit::detail
