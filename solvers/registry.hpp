#pragma once
// Samplers by name, and the options each one takes. A new sampler is one .cpp with a factory plus
// one entry in registry.cpp (its name, summary and the names of the options it takes); a new
// option is one entry of sampler_option_specs() and its field in SamplerOptions. The command
// line's flags, `sdekit list`, the help texts and the errors for options a sampler does not take
// are generated from these two tables.
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "solvers/samplers.hpp"

namespace sdekit {

/// One sampler option: the flag --name, its value type ("real", "int", "flag" or a choice
/// "a | b"), its default and meaning, and what it accepts.
struct SamplerOptionSpec {
  std::string name;
  std::string type;
  std::string default_value;
  std::string meaning;
  std::string range;
  /// Parses `text` into `o` ("true" for a flag). Throws std::invalid_argument naming --name.
  void (*apply)(SamplerOptions& o, const std::string& text);
};

/// Every sampler option, once.
const std::vector<SamplerOptionSpec>& sampler_option_specs();

struct SamplerInfo {
  std::string name;
  std::string summary;  // one line: what it integrates and how
  std::unique_ptr<Sampler> (*make)(const SamplerOptions&);
  std::vector<std::string> options = {};  // the sampler_option_specs() it takes, by name
};

const std::vector<SamplerInfo>& sampler_registry();
/// Adds a sampler (a user's own, see the README's "Adding a sampler"): from then on it is
/// reachable by name like the built-in ones (make_sampler, `converge`, `fid-table`). Call it
/// before sampling starts, from one thread. Throws std::invalid_argument for an empty name or
/// factory, a name already taken, or an option that sampler_option_specs() does not declare.
void register_sampler(SamplerInfo info);
/// A sampler name may carry options: "NAME:OPTION=VALUE[:OPTION=VALUE...]" (the flags of
/// sampler_option_specs() without "--"), so that studies list variants of one sampler, e.g.
/// "er-sde:er-sde-noise=ode". Throws std::invalid_argument for an item without '=' or an option
/// given twice.
struct SamplerVariant {
  std::string base;
  std::vector<std::pair<std::string, std::string>> options;
};
SamplerVariant parse_sampler_variant(std::string_view name);
/// The registry entry of a name's base sampler. Unknown names throw std::invalid_argument
/// listing the valid ones.
const SamplerInfo& sampler_info(std::string_view name);
/// The sampler of a name (with its options applied over `options`; unknown or inapplicable
/// options throw naming the option and the sampler's options).
std::unique_ptr<Sampler> make_sampler(std::string_view name, const SamplerOptions& options = {});

/// The options of sampler `name` from the values given by option name (without "--"). An option
/// the sampler does not take throws std::invalid_argument naming the option, the sampler and the
/// options it takes. Options in the name win over `given`.
SamplerOptions sampler_options_for(std::string_view name,
                                   const std::map<std::string, std::string>& given);

/// "--eta, --variance" (or "none"): the options a sampler takes, for messages and listings.
std::string sampler_option_list(const SamplerInfo& info);

}  // namespace sdekit
