#pragma once
// Options the built-in samplers take, and their factories (one sampler per .cpp). Users reach
// them through the registry (solvers/registry.hpp).
#include <memory>
#include <string>
#include <string_view>

#include "solvers/sampler.hpp"

namespace sdekit {

/// Variance of the ancestral (DDPM) step from s to t: the posterior variance of
/// q(x_t | x_s, x0) (DDPM's beta-tilde) or the forward transition variance (DDPM's beta).
enum class AncestralVariance { Posterior, Transition };
AncestralVariance parse_ancestral_variance(std::string_view name);  // "posterior" | "transition"
std::string ancestral_variance_name(AncestralVariance v);

struct SamplerOptions {
  double eta = 0.0;  // DDIM: 0 deterministic, 1 the posterior (ancestral) noise level
  AncestralVariance variance = AncestralVariance::Posterior;
};

std::unique_ptr<Sampler> make_euler_maruyama(const SamplerOptions&);
std::unique_ptr<Sampler> make_euler(const SamplerOptions&);
std::unique_ptr<Sampler> make_heun(const SamplerOptions&);
std::unique_ptr<Sampler> make_rk4(const SamplerOptions&);
std::unique_ptr<Sampler> make_ancestral(const SamplerOptions&);
std::unique_ptr<Sampler> make_ddim(const SamplerOptions&);

}  // namespace sdekit
