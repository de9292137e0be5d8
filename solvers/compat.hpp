#pragma once
// Presets that reproduce a reference implementation's conventions (docs/theory.md section 4.17):
// `--compat k-diffusion` and `--compat dpm-solver` set every convention option the chosen sampler
// takes; an option given explicitly wins over the preset.
#include <map>
#include <string>
#include <string_view>

#include "solvers/samplers.hpp"

namespace sdekit {

enum class Compat { None, KDiffusion, DpmSolver };
/// "none" | "k-diffusion" | "dpm-solver"; unknown names throw std::invalid_argument listing them.
Compat parse_compat(std::string_view name);
std::string compat_name(Compat c);

/// The sampler options (by name, without "--", value as text) preset `c` sets for `sampler`: only
/// options that sampler takes (sampler_info(sampler).options).
/// k-diffusion: lower-order-final to-zero, lms-start lower-order.
/// dpm-solver: singlestep-rule official, dpmpp3m-reference, lower-order-final below-10, and for
/// the adaptive DPM-Solvers the official controller and tolerances (max-growth inf,
/// factor-float32, rtol 0.05, atol 0.0078).
std::map<std::string, std::string> compat_sampler_options(Compat c, std::string_view sampler);

/// sampler_options_for(sampler, compat_sampler_options(c, sampler)): the options of `sampler` under
/// the preset and nothing else.
SamplerOptions compat_options(Compat c, std::string_view sampler);

/// Whether runs under the preset end with the step to sigma = 0 (SampleSpec::to_zero):
/// k-diffusion's grids end with 0.
bool compat_to_zero(Compat c);

}  // namespace sdekit
