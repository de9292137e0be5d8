#include "solvers/registry.hpp"

#include <stdexcept>

namespace sdekit {

const std::vector<SamplerInfo>& sampler_registry() {
  static const std::vector<SamplerInfo> reg = {
      {"euler-maruyama", "Euler-Maruyama on the reverse SDE (any SDE)", make_euler_maruyama},
      {"euler", "Euler on the probability-flow ODE (Boost.Odeint)", make_euler},
      {"heun", "Heun (RK2) on the probability-flow ODE (Boost.Odeint)", make_heun},
      {"rk4", "classical Runge-Kutta 4 on the probability-flow ODE (Boost.Odeint)", make_rk4},
      {"ancestral", "DDPM ancestral sampling, posterior or transition variance", make_ancestral},
      {"ddim", "DDIM(eta); eta = 0 is deterministic (= DPM-Solver-1)", make_ddim},
      {"dpm-solver-1", "DPM-Solver-1, noise prediction, exact in lambda (= DDIM eta 0)",
       [](const SamplerOptions& o) { return make_dpm_solver(1, o); }},
      {"dpm-solver-2", "DPM-Solver-2, singlestep (r1 = 1/2)",
       [](const SamplerOptions& o) { return make_dpm_solver(2, o); }},
      {"dpm-solver-3", "DPM-Solver-3, singlestep (r1 = 1/3, r2 = 2/3)",
       [](const SamplerOptions& o) { return make_dpm_solver(3, o); }},
      {"dpm-solver-fast", "DPM-Solver-fast: orders 3,..,3 then 2/1 to spend an exact NFE budget",
       make_dpm_solver_fast},
      {"dpm-solver-12", "adaptive DPM-Solver-12 (rtol/atol)",
       [](const SamplerOptions& o) { return make_dpm_solver_adaptive(2, o); }},
      {"dpm-solver-23", "adaptive DPM-Solver-23 (rtol/atol)",
       [](const SamplerOptions& o) { return make_dpm_solver_adaptive(3, o); }},
      {"dpmpp-1", "DPM-Solver++ 1, data prediction",
       [](const SamplerOptions& o) { return make_dpmpp("1", o); }},
      {"dpmpp-2s", "DPM-Solver++ 2S, singlestep",
       [](const SamplerOptions& o) { return make_dpmpp("2s", o); }},
      {"dpmpp-2m", "DPM-Solver++ 2M, multistep",
       [](const SamplerOptions& o) { return make_dpmpp("2m", o); }},
      {"dpmpp-3m", "DPM-Solver++ 3M, multistep",
       [](const SamplerOptions& o) { return make_dpmpp("3m", o); }},
      {"sde-dpmpp-2m", "SDE-DPM-Solver++ 2M (stochastic, Brownian-path aware)", make_sde_dpmpp_2m},
      {"unipc-1", "UniPC-1 (UniP-1 + UniC), bh1/bh2",
       [](const SamplerOptions& o) { return make_unipc(1, o); }},
      {"unipc-2", "UniPC-2 (UniP-2 + UniC), bh1/bh2",
       [](const SamplerOptions& o) { return make_unipc(2, o); }},
      {"unipc-3", "UniPC-3 (UniP-3 + UniC), bh1/bh2",
       [](const SamplerOptions& o) { return make_unipc(3, o); }},
      {"dopri5", "adaptive Dormand-Prince 5(4) on the PF-ODE (Boost.Odeint)", make_dopri5},
      {"cash-karp", "adaptive Cash-Karp 5(4) on the PF-ODE (Boost.Odeint)", make_cash_karp},
      {"fehlberg78", "adaptive Runge-Kutta-Fehlberg 7(8) on the PF-ODE (Boost.Odeint)",
       make_fehlberg78},
      {"edm-heun", "EDM Heun with stochastic churn (S_churn, S_tmin, S_tmax, S_noise)",
       make_edm_heun},
      {"pc", "predictor-corrector: predictor + Langevin corrector (snr)", make_predictor_corrector},
      {"annealed-langevin", "annealed Langevin dynamics (NCSN), K steps per noise level",
       make_annealed_langevin},
      {"sra", "strong order 1.5 stochastic Runge-Kutta (Roessler SRA) for additive noise",
       make_sra},
      {"consistency",
       "consistency sampling of a consistency model: 1 step f(x_T, T), or noise back and repeat",
       make_consistency},
  };
  return reg;
}

std::unique_ptr<Sampler> make_sampler(std::string_view name, const SamplerOptions& options) {
  std::string valid;
  for (const auto& s : sampler_registry()) {
    if (s.name == name) return s.make(options);
    valid += (valid.empty() ? "" : ", ") + s.name;
  }
  throw std::invalid_argument("unknown sampler '" + std::string(name) + "'; valid: " + valid);
}

AncestralVariance parse_ancestral_variance(std::string_view name) {
  if (name == "posterior") return AncestralVariance::Posterior;
  if (name == "transition") return AncestralVariance::Transition;
  throw std::invalid_argument("unknown ancestral variance '" + std::string(name) +
                              "'; valid: posterior, transition");
}

UniPCVariant parse_unipc_variant(std::string_view name) {
  if (name == "bh1") return UniPCVariant::Bh1;
  if (name == "bh2") return UniPCVariant::Bh2;
  throw std::invalid_argument("unknown UniPC variant '" + std::string(name) + "'; valid: bh1, bh2");
}

PCPredictor parse_pc_predictor(std::string_view name) {
  if (name == "euler-maruyama") return PCPredictor::EulerMaruyama;
  if (name == "reverse-diffusion") return PCPredictor::ReverseDiffusion;
  if (name == "ancestral") return PCPredictor::Ancestral;
  throw std::invalid_argument("unknown predictor '" + std::string(name) +
                              "'; valid: euler-maruyama, reverse-diffusion, ancestral");
}

std::string ancestral_variance_name(AncestralVariance v) {
  return v == AncestralVariance::Posterior ? "posterior" : "transition";
}

}  // namespace sdekit
