#include "solvers/registry.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>

namespace sdekit {

namespace {
std::vector<SamplerInfo>& registry() {
  static std::vector<SamplerInfo> reg = {
      {"euler-maruyama", "Euler-Maruyama on the reverse SDE (any SDE)", make_euler_maruyama},
      {"euler", "Euler on the probability-flow ODE (Boost.Odeint)", make_euler},
      {"heun", "Heun (RK2) on the probability-flow ODE (Boost.Odeint)", make_heun},
      {"rk4", "classical Runge-Kutta 4 on the probability-flow ODE (Boost.Odeint)", make_rk4},
      {"ancestral",
       "DDPM ancestral sampling, posterior or transition variance",
       make_ancestral,
       {"variance"}},
      {"ddim", "DDIM(eta); eta = 0 is deterministic (= DPM-Solver-1)", make_ddim, {"eta"}},
      {"dpm-solver-1",
       "DPM-Solver-1, noise prediction, exact in lambda (= DDIM eta 0)",
       [](const SamplerOptions& o) { return make_dpm_solver(1, o); },
       {"singlestep-rule"}},
      {"dpm-solver-2",
       "DPM-Solver-2, singlestep (r1 = 1/2)",
       [](const SamplerOptions& o) { return make_dpm_solver(2, o); },
       {"singlestep-rule"}},
      {"dpm-solver-3",
       "DPM-Solver-3, singlestep (r1 = 1/3, r2 = 2/3)",
       [](const SamplerOptions& o) { return make_dpm_solver(3, o); },
       {"singlestep-rule"}},
      {"dpm-solver-fast",
       "DPM-Solver-fast: orders 3,..,3 then 2/1 to spend an exact NFE budget",
       make_dpm_solver_fast,
       {"singlestep-rule"}},
      {"dpm-solver-12",
       "adaptive DPM-Solver-12 (rtol/atol)",
       [](const SamplerOptions& o) { return make_dpm_solver_adaptive(2, o); },
       {"rtol", "atol", "max-steps", "max-growth", "factor-float32"}},
      {"dpm-solver-23",
       "adaptive DPM-Solver-23 (rtol/atol)",
       [](const SamplerOptions& o) { return make_dpm_solver_adaptive(3, o); },
       {"rtol", "atol", "max-steps", "max-growth", "factor-float32"}},
      {"dpmpp-12",
       "adaptive DPM-Solver++-12, data prediction (rtol/atol)",
       [](const SamplerOptions& o) { return make_dpm_solver_adaptive(2, o, true); },
       {"rtol", "atol", "max-steps", "max-growth", "factor-float32"}},
      {"dpmpp-23",
       "adaptive DPM-Solver++-23, data prediction (rtol/atol)",
       [](const SamplerOptions& o) { return make_dpm_solver_adaptive(3, o, true); },
       {"rtol", "atol", "max-steps", "max-growth", "factor-float32"}},
      {"dpmpp-1", "DPM-Solver++ 1, data prediction",
       [](const SamplerOptions& o) { return make_dpmpp("1", o); }},
      {"dpmpp-2s", "DPM-Solver++ 2S, singlestep",
       [](const SamplerOptions& o) { return make_dpmpp("2s", o); }},
      {"dpmpp-2m",
       "DPM-Solver++ 2M, multistep",
       [](const SamplerOptions& o) { return make_dpmpp("2m", o); },
       {"lower-order-final"}},
      {"dpmpp-3m",
       "DPM-Solver++ 3M, multistep",
       [](const SamplerOptions& o) { return make_dpmpp("3m", o); },
       {"dpmpp3m-reference", "lower-order-final"}},
      {"sde-dpmpp-2m", "SDE-DPM-Solver++ 2M (stochastic, Brownian-path aware)", make_sde_dpmpp_2m},
      {"unipc-1",
       "UniPC-1 (UniP-1 + UniC), bh1/bh2",
       [](const SamplerOptions& o) { return make_unipc(1, o); },
       {"unipc-variant", "lower-order-final"}},
      {"unipc-2",
       "UniPC-2 (UniP-2 + UniC), bh1/bh2",
       [](const SamplerOptions& o) { return make_unipc(2, o); },
       {"unipc-variant", "lower-order-final"}},
      {"unipc-3",
       "UniPC-3 (UniP-3 + UniC), bh1/bh2",
       [](const SamplerOptions& o) { return make_unipc(3, o); },
       {"unipc-variant", "lower-order-final"}},
      {"dopri5",
       "adaptive Dormand-Prince 5(4) on the PF-ODE (Boost.Odeint)",
       make_dopri5,
       {"rtol", "atol", "max-steps", "dense-output"}},
      {"cash-karp",
       "adaptive Cash-Karp 5(4) on the PF-ODE (Boost.Odeint)",
       make_cash_karp,
       {"rtol", "atol", "max-steps"}},
      {"fehlberg78",
       "adaptive Runge-Kutta-Fehlberg 7(8) on the PF-ODE (Boost.Odeint)",
       make_fehlberg78,
       {"rtol", "atol", "max-steps"}},
      {"edm-heun",
       "EDM Heun with stochastic churn (S_churn, S_tmin, S_tmax, S_noise)",
       make_edm_heun,
       {"s-churn", "s-tmin", "s-tmax", "s-noise"}},
      {"euler-ancestral",
       "Euler ancestral in sigma (eta: noise fraction, 1 = DDPM's posterior noise)",
       make_euler_ancestral,
       {"ancestral-eta", "s-noise"}},
      {"dpm-2", "DPM2 (Karras et al.): Euler to the log-sigma midpoint, then its slope",
       make_dpm_2},
      {"lms",
       "linear multistep in sigma, exact Lagrange coefficients",
       make_lms,
       {"lms-order", "lms-start"}},
      {"ipndm",
       "iPNDM: Adams-Bashforth in sigma with equal-step coefficients, lower-order warm-up",
       make_ipndm,
       {"ipndm-order"}},
      {"ipndm-v",
       "iPNDM-v: variable-step Adams-Bashforth in sigma (diff-sampler's coefficients)",
       make_ipndm_v,
       {"ipndm-order"}},
      {"deis-1", "DEIS tAB1: exponential integrator, eps linear in t (order 2)",
       [](const SamplerOptions& o) { return make_deis(1, o); }},
      {"deis-2", "DEIS tAB2: eps quadratic in t (order 3)",
       [](const SamplerOptions& o) { return make_deis(2, o); }},
      {"deis-3", "DEIS tAB3: eps cubic in t (order 4)",
       [](const SamplerOptions& o) { return make_deis(3, o); }},
      {"res-multistep",
       "RES multistep: second-order exponential multistep in x0, exact phi-function weights",
       make_res_multistep},
      {"restart",
       "Restart sampling: Heun in sigma with K forward re-noisings to restart-tmax and returns",
       make_restart,
       {"restart-tmin", "restart-tmax", "restart-k", "restart-steps"}},
      {"er-sde",
       "ER-SDE-Solver: extended reverse SDE in sigma~, noise-scale function phi, 1 to 3 stages",
       make_er_sde,
       {"er-sde-stages", "er-sde-noise", "er-sde-points", "s-noise"}},
      {"sa-solver",
       "SA-Solver: stochastic Adams predictor-corrector in lambda, tau controlling the noise",
       make_sa_solver,
       {"sa-predictor-order", "sa-corrector-order", "sa-tau", "sa-tau-min", "sa-tau-max", "s-noise",
        "lower-order-final"}},
      {"dpmpp-2s-ancestral",
       "DPM-Solver++ 2S with ancestral noise",
       make_dpmpp_2s_ancestral,
       {"ancestral-eta", "s-noise"}},
      {"dpmpp-sde",
       "DPM-Solver++ SDE, singlestep second order with noise at both stages",
       make_dpmpp_sde,
       {"ancestral-eta", "s-noise", "sde-r"}},
      {"dpmpp-2m-sde",
       "DPM-Solver++ 2M SDE (midpoint or Heun correction)",
       [](const SamplerOptions& o) { return make_dpmpp_multistep_sde(2, o); },
       {"ancestral-eta", "s-noise", "sde-solver"}},
      {"dpmpp-3m-sde",
       "DPM-Solver++ 3M SDE",
       [](const SamplerOptions& o) { return make_dpmpp_multistep_sde(3, o); },
       {"ancestral-eta", "s-noise"}},
      {"pc",
       "predictor-corrector: predictor + Langevin corrector (snr)",
       make_predictor_corrector,
       {"predictor", "corrector-steps", "snr", "variance"}},
      {"annealed-langevin",
       "annealed Langevin dynamics (NCSN), K steps per noise level",
       make_annealed_langevin,
       {"langevin-steps", "langevin-eps"}},
      {"sra", "strong order 1.5 stochastic Runge-Kutta (Roessler SRA) for additive noise",
       make_sra},
      {"consistency",
       "consistency sampling of a consistency model: 1 step f(x_T, T), or noise back and repeat",
       make_consistency},
  };
  return reg;
}
}  // namespace

const std::vector<SamplerInfo>& sampler_registry() {
  return registry();
}

void register_sampler(SamplerInfo info) {
  if (info.name.empty() || !info.make)
    throw std::invalid_argument("register_sampler: a sampler needs a name and a factory");
  for (const auto& s : registry())
    if (s.name == info.name)
      throw std::invalid_argument("register_sampler: a sampler named '" + info.name +
                                  "' is already registered");
  for (const auto& o : info.options) {
    bool known = false;
    for (const auto& spec : sampler_option_specs()) known = known || spec.name == o;
    if (!known)
      throw std::invalid_argument("register_sampler: sampler '" + info.name +
                                  "' takes an unknown option --" + o);
  }
  registry().push_back(std::move(info));
}

SamplerVariant parse_sampler_variant(std::string_view name) {
  SamplerVariant v;
  const std::size_t colon = name.find(':');
  v.base = std::string(name.substr(0, colon));
  if (colon == std::string_view::npos) return v;
  const std::string rest(name.substr(colon + 1));
  std::size_t pos = 0;
  while (true) {
    const std::size_t next = rest.find(':', pos);
    const std::string item = rest.substr(pos, next == std::string::npos ? next : next - pos);
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw std::invalid_argument("sampler '" + std::string(name) +
                                  "': expected NAME:OPTION=VALUE[:OPTION=VALUE...], got '" + item +
                                  "'");
    for (const auto& [o, value] : v.options)
      if (o == item.substr(0, eq))
        throw std::invalid_argument("sampler '" + std::string(name) + "': option " + o +
                                    " given twice");
    v.options.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  return v;
}

const SamplerInfo& sampler_info(std::string_view name) {
  const std::string base = parse_sampler_variant(name).base;
  std::string valid;
  for (const auto& s : sampler_registry()) {
    if (s.name == base) return s;
    valid += (valid.empty() ? "" : ", ") + s.name;
  }
  throw std::invalid_argument("unknown sampler '" + base + "'; valid: " + valid);
}

namespace {
// Applies one option to `o` for the sampler `info`, or throws naming it.
void apply_sampler_option(const SamplerInfo& info, const std::string& option,
                          const std::string& value, SamplerOptions& o) {
  const SamplerOptionSpec* spec = nullptr;
  for (const auto& s : sampler_option_specs())
    if (s.name == option) spec = &s;
  if (!spec) throw std::invalid_argument("unknown sampler option --" + option);
  bool takes = false;
  for (const auto& t : info.options) takes = takes || t == option;
  if (!takes)
    throw std::invalid_argument("--" + option + " does not apply to --sampler " + info.name +
                                " (its options: " + sampler_option_list(info) + ")");
  spec->apply(o, value);
}
}  // namespace

std::unique_ptr<Sampler> make_sampler(std::string_view name, const SamplerOptions& options) {
  const SamplerVariant v = parse_sampler_variant(name);
  const SamplerInfo& info = sampler_info(v.base);
  if (v.options.empty()) return info.make(options);
  SamplerOptions o = options;
  for (const auto& [option, value] : v.options) apply_sampler_option(info, option, value, o);
  return info.make(o);
}

namespace {

double parse_real(const std::string& flag, const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || !std::isfinite(v))
    throw std::invalid_argument("--" + flag + ": expected a finite number, got '" + text + "'");
  return v;
}

int parse_int(const std::string& flag, const std::string& text, int lo) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || v < lo || v > std::numeric_limits<int>::max())
    throw std::invalid_argument("--" + flag + ": expected an integer in [" + std::to_string(lo) +
                                ", " + std::to_string(std::numeric_limits<int>::max()) +
                                "], got '" + text + "'");
  return static_cast<int>(v);
}

double parse_positive(const std::string& flag, const std::string& text) {
  const double v = parse_real(flag, text);
  if (!(v > 0)) throw std::invalid_argument("--" + flag + ": must be > 0, got '" + text + "'");
  return v;
}

}  // namespace

const std::vector<SamplerOptionSpec>& sampler_option_specs() {
  static const std::vector<SamplerOptionSpec> specs = {
      {"eta", "real", "0", "DDIM's eta: 0 deterministic, 1 the posterior noise level", ">= 0",
       [](SamplerOptions& o, const std::string& v) { o.eta = parse_real("eta", v); }},
      {"ancestral-eta", "real", "1",
       "ancestral and SDE samplers in sigma: noise fraction (0 deterministic, 1 DDPM's posterior "
       "noise)",
       ">= 0",
       [](SamplerOptions& o, const std::string& v) {
         o.ancestral_eta = parse_real("ancestral-eta", v);
       }},
      {"variance", "posterior | transition", "posterior",
       "ancestral variance: DDPM's beta-tilde (posterior) or beta (transition)",
       "posterior | transition",
       [](SamplerOptions& o, const std::string& v) { o.variance = parse_ancestral_variance(v); }},
      {"rtol", "real", "1e-05", "adaptive samplers: relative tolerance", "> 0",
       [](SamplerOptions& o, const std::string& v) { o.rtol = parse_positive("rtol", v); }},
      {"atol", "real", "1e-05", "adaptive samplers: absolute tolerance", "> 0",
       [](SamplerOptions& o, const std::string& v) { o.atol = parse_positive("atol", v); }},
      {"max-steps", "int", "100000", "adaptive samplers: attempted steps before giving up",
       "1 .. 10^7",
       [](SamplerOptions& o, const std::string& v) {
         o.max_steps = parse_int("max-steps", v, 1);
         if (o.max_steps > 10000000)
           throw std::invalid_argument("--max-steps: at most 10000000, got " + v);
       }},
      {"max-growth", "real", "5",
       "adaptive DPM-Solver: the largest growth of the step per attempt (inf: none, the official "
       "controller)",
       "> 1, or inf",
       [](SamplerOptions& o, const std::string& v) {
         if (v == "inf" || v == "none") {
           o.max_growth = HUGE_VAL;
           return;
         }
         o.max_growth = parse_real("max-growth", v);
         if (!(o.max_growth > 1.0))
           throw std::invalid_argument("--max-growth: must be > 1 (or inf), got '" + v + "'");
       }},
      {"factor-float32", "flag", "off",
       "adaptive DPM-Solver: round the step factor E^(-1/k) to float32 (the official controller)",
       "", [](SamplerOptions& o, const std::string&) { o.factor_float32 = true; }},
      {"singlestep-rule", "sdekit | official", "sdekit",
       "dpm-solver-K: one step per grid interval with fixed ratios in lambda (sdekit), or "
       "DPM-Solver's official singlestep rule (the budget's order schedule over N grid "
       "intervals, the inner points on the grid's nodes)",
       "sdekit | official",
       [](SamplerOptions& o, const std::string& v) {
         if (v != "sdekit" && v != "official")
           throw std::invalid_argument("--singlestep-rule: expected sdekit or official, got '" + v +
                                       "'");
         o.singlestep_official = v == "official";
       }},
      {"dense-output", "flag", "off", "dopri5: the dense-output stepper", "",
       [](SamplerOptions& o, const std::string&) { o.dense_output = true; }},
      {"dpmpp3m-reference", "flag", "off",
       "dpmpp-3m: the reference implementation's (second-order) update", "",
       [](SamplerOptions& o, const std::string&) { o.dpmpp3m_reference = true; }},
      {"lower-order-final", "below-10 | off | to-zero", "below-10",
       "multistep samplers: lower the final steps' order on grids under 10 steps (below-10), "
       "never (off), or only on a step to sigma = 0 (to-zero)",
       "below-10 | off | to-zero",
       [](SamplerOptions& o, const std::string& v) {
         o.lower_order_final = parse_lower_order_final(v);
       }},
      {"unipc-variant", "bh1 | bh2", "bh2", "UniPC's B(h): h (bh1) or expm1(h) (bh2)", "bh1 | bh2",
       [](SamplerOptions& o, const std::string& v) { o.unipc_variant = parse_unipc_variant(v); }},
      {"s-churn", "real", "0", "edm-heun: S_churn (0: deterministic)", ">= 0",
       [](SamplerOptions& o, const std::string& v) { o.s_churn = parse_real("s-churn", v); }},
      {"s-tmin", "real", "0", "edm-heun: churn only where sigma/alpha >= S_tmin", ">= 0",
       [](SamplerOptions& o, const std::string& v) { o.s_tmin = parse_real("s-tmin", v); }},
      {"s-tmax", "real", "1e+30", "edm-heun: churn only where sigma/alpha <= S_tmax", ">= S_tmin",
       [](SamplerOptions& o, const std::string& v) { o.s_tmax = parse_real("s-tmax", v); }},
      {"s-noise", "real", "1",
       "the scale of the added noise (edm-heun: S_noise of the churn; ancestral and SDE samplers)",
       ">= 0",
       [](SamplerOptions& o, const std::string& v) { o.s_noise = parse_real("s-noise", v); }},
      {"sde-r", "real", "0.5", "dpmpp-sde: the intermediate point at lambda_s + r h", "(0, 1]",
       [](SamplerOptions& o, const std::string& v) { o.sde_r = parse_positive("sde-r", v); }},
      {"sde-solver", "midpoint | heun", "midpoint", "dpmpp-2m-sde: the second-order correction",
       "midpoint | heun",
       [](SamplerOptions& o, const std::string& v) {
         if (v != "midpoint" && v != "heun")
           throw std::invalid_argument("--sde-solver: expected midpoint or heun, got '" + v + "'");
         o.sde_solver_heun = v == "heun";
       }},
      {"lms-order", "int", "4", "lms: the order of the multistep formula", "1 .. 4",
       [](SamplerOptions& o, const std::string& v) {
         o.lms_order = parse_int("lms-order", v, 1);
         if (o.lms_order > 4) throw std::invalid_argument("--lms-order: at most 4, got " + v);
       }},
      {"ipndm-order", "int", "4", "ipndm, ipndm-v: the highest Adams-Bashforth order", "1 .. 4",
       [](SamplerOptions& o, const std::string& v) {
         o.ipndm_order = parse_int("ipndm-order", v, 1);
         if (o.ipndm_order > 4) throw std::invalid_argument("--ipndm-order: at most 4, got " + v);
       }},
      {"restart-tmin", "real", "0.06", "restart: the interval's lower end in sigma/alpha", "> 0",
       [](SamplerOptions& o, const std::string& v) {
         o.restart_tmin = parse_positive("restart-tmin", v);
       }},
      {"restart-tmax", "real", "0.3", "restart: the interval's upper end in sigma/alpha",
       "> restart-tmin",
       [](SamplerOptions& o, const std::string& v) {
         o.restart_tmax = parse_positive("restart-tmax", v);
       }},
      {"restart-k", "int", "2", "restart: the number of re-noisings", ">= 0",
       [](SamplerOptions& o, const std::string& v) { o.restart_k = parse_int("restart-k", v, 0); }},
      {"restart-steps", "int", "3", "restart: Heun steps from restart-tmax back to restart-tmin",
       ">= 1",
       [](SamplerOptions& o, const std::string& v) {
         o.restart_steps = parse_int("restart-steps", v, 1);
       }},
      {"er-sde-stages", "int", "3", "er-sde: the stages (Taylor terms of D in sigma~)", "1 .. 3",
       [](SamplerOptions& o, const std::string& v) {
         o.er_sde_stages = parse_int("er-sde-stages", v, 1);
         if (o.er_sde_stages > 3)
           throw std::invalid_argument("--er-sde-stages: at most 3, got " + v);
       }},
      {"er-sde-noise", "er5 | ode | sde", "er5",
       "er-sde: the noise-scale function phi: u (e^{u^0.3} + 10) (er5, the paper's ER-SDE 5), u "
       "(ode: the PF-ODE), u^2 (sde: the reverse SDE)",
       "er5 | ode | sde",
       [](SamplerOptions& o, const std::string& v) {
         if (v == "er5")
           o.er_sde_noise = ErSdeNoise::Default;
         else if (v == "ode")
           o.er_sde_noise = ErSdeNoise::Ode;
         else if (v == "sde")
           o.er_sde_noise = ErSdeNoise::Sde;
         else
           throw std::invalid_argument("--er-sde-noise: expected er5, ode or sde, got '" + v + "'");
       }},
      {"er-sde-points", "int", "0",
       "er-sde: its integrals by a left Riemann sum of N points, as the reference implementations "
       "(200); 0: exact",
       ">= 0",
       [](SamplerOptions& o, const std::string& v) {
         o.er_sde_points = parse_int("er-sde-points", v, 0);
       }},
      {"sa-predictor-order", "int", "3", "sa-solver: the Adams-Bashforth predictor's order",
       "1 .. 4",
       [](SamplerOptions& o, const std::string& v) {
         o.sa_predictor_order = parse_int("sa-predictor-order", v, 1);
         if (o.sa_predictor_order > 4)
           throw std::invalid_argument("--sa-predictor-order: at most 4, got " + v);
       }},
      {"sa-corrector-order", "int", "4",
       "sa-solver: the Adams-Moulton corrector's order (0: no corrector)", "0 .. 4",
       [](SamplerOptions& o, const std::string& v) {
         o.sa_corrector_order = parse_int("sa-corrector-order", v, 0);
         if (o.sa_corrector_order > 4)
           throw std::invalid_argument("--sa-corrector-order: at most 4, got " + v);
       }},
      {"sa-tau", "real", "1",
       "sa-solver: tau, the noise (0: the PF-ODE, 1: the reverse SDE) inside its interval", ">= 0",
       [](SamplerOptions& o, const std::string& v) {
         o.sa_tau = parse_real("sa-tau", v);
         if (!(o.sa_tau >= 0.0)) throw std::invalid_argument("--sa-tau: must be >= 0, got " + v);
       }},
      {"sa-tau-min", "real", "0", "sa-solver: tau applies where sigma/alpha >= this", ">= 0",
       [](SamplerOptions& o, const std::string& v) { o.sa_tau_min = parse_real("sa-tau-min", v); }},
      {"sa-tau-max", "real", "inf", "sa-solver: tau applies where sigma/alpha <= this",
       ">= sa-tau-min, or inf",
       [](SamplerOptions& o, const std::string& v) {
         o.sa_tau_max = v == "inf" ? HUGE_VAL : parse_real("sa-tau-max", v);
       }},
      {"lms-start", "rk4 | lower-order", "rk4",
       "lms: the first steps by Runge-Kutta 4 (keeps the order) or by lower orders (k-diffusion)",
       "rk4 | lower-order",
       [](SamplerOptions& o, const std::string& v) {
         if (v != "rk4" && v != "lower-order")
           throw std::invalid_argument("--lms-start: expected rk4 or lower-order, got '" + v + "'");
         o.lms_rk4_start = v == "rk4";
       }},
      {"predictor", "euler-maruyama | reverse-diffusion | ancestral", "reverse-diffusion",
       "pc: the predictor", "euler-maruyama | reverse-diffusion | ancestral",
       [](SamplerOptions& o, const std::string& v) { o.pc_predictor = parse_pc_predictor(v); }},
      {"corrector-steps", "int", "1", "pc: Langevin corrector steps after each predictor step",
       ">= 0",
       [](SamplerOptions& o, const std::string& v) {
         o.corrector_steps = parse_int("corrector-steps", v, 0);
       }},
      {"snr", "real", "0.16", "pc: the corrector's signal-to-noise ratio r", ">= 0",
       [](SamplerOptions& o, const std::string& v) { o.snr = parse_real("snr", v); }},
      {"langevin-steps", "int", "100", "annealed-langevin: Langevin steps per noise level", ">= 1",
       [](SamplerOptions& o, const std::string& v) {
         o.langevin_steps = parse_int("langevin-steps", v, 1);
       }},
      {"langevin-eps", "real", "2e-05", "annealed-langevin: the step scale e", "> 0",
       [](SamplerOptions& o, const std::string& v) {
         o.langevin_eps = parse_positive("langevin-eps", v);
       }},
  };
  return specs;
}

std::string sampler_option_list(const SamplerInfo& info) {
  std::string list;
  for (const auto& o : info.options) list += (list.empty() ? "--" : ", --") + o;
  return list.empty() ? "none" : list;
}

SamplerOptions sampler_options_for(std::string_view name,
                                   const std::map<std::string, std::string>& given) {
  const SamplerVariant v = parse_sampler_variant(name);
  const SamplerInfo& info = sampler_info(v.base);
  SamplerOptions o;
  for (const auto& [option, value] : given) apply_sampler_option(info, option, value, o);
  for (const auto& [option, value] : v.options) apply_sampler_option(info, option, value, o);
  return o;
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

LowerOrderFinal parse_lower_order_final(std::string_view name) {
  if (name == "below-10") return LowerOrderFinal::Below10;
  if (name == "off") return LowerOrderFinal::Off;
  if (name == "to-zero") return LowerOrderFinal::ToZero;
  throw std::invalid_argument("unknown lower-order-final rule '" + std::string(name) +
                              "'; valid: below-10, off, to-zero");
}

std::string ancestral_variance_name(AncestralVariance v) {
  return v == AncestralVariance::Posterior ? "posterior" : "transition";
}

}  // namespace sdekit
