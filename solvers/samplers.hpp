#pragma once
// Options the built-in samplers take, and their factories (one sampler per .cpp). Users reach
// them through the registry (solvers/registry.hpp).
#include <array>
#include <cmath>
#include <functional>
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

/// UniPC's B(h): bh1 = h, bh2 = expm1(h) (Zhao et al. 2023).
enum class UniPCVariant { Bh1, Bh2 };
UniPCVariant parse_unipc_variant(std::string_view name);  // "bh1" | "bh2"

/// Predictor of the predictor-corrector sampler (Song et al. 2021).
enum class PCPredictor { EulerMaruyama, ReverseDiffusion, Ancestral };
PCPredictor parse_pc_predictor(
    std::string_view name);  // "euler-maruyama" | "reverse-diffusion" | "ancestral"

/// When the multistep exponential integrators (dpmpp-2m, dpmpp-3m, unipc-*) lower the order of
/// their final steps: on grids of fewer than 10 steps, min(order, steps - i) (DPM-Solver's
/// rule, the default); never ("off"); or only on a step that ends where lambda is infinite
/// (sigma = 0, k-diffusion's rule, "to-zero"), which every multistep sampler takes as the
/// order-1 limit anyway.
enum class LowerOrderFinal { Below10, Off, ToZero };
LowerOrderFinal parse_lower_order_final(std::string_view name);  // "below-10" | "off" | "to-zero"

/// ER-SDE's noise-scale function phi (er_sde.cpp): the paper's ER-SDE 5, phi(u) = u (e^{u^0.3} +
/// 10) (Default); phi(u) = u, the PF-ODE (Ode); phi(u) = u^2, the reverse SDE (Sde).
enum class ErSdeNoise { Default, Ode, Sde };

struct SamplerOptions {
  double eta = 0.0;  // DDIM: 0 deterministic, 1 the posterior (ancestral) noise level
  // The ancestral and SDE samplers in sigma (euler-ancestral, dpmpp-2s-ancestral, dpmpp-sde,
  // dpmpp-2m-sde, dpmpp-3m-sde): their noise fraction eta (k-diffusion's eta, default 1).
  double ancestral_eta = 1.0;
  double sde_r = 0.5;            // dpmpp-sde: the intermediate point at lambda_s + r h
  bool sde_solver_heun = false;  // dpmpp-2m-sde: Heun's correction instead of the midpoint's
  int lms_order = 4;             // lms: the order of the multistep formula (1 to 4)
  bool lms_rk4_start = true;     // lms: Runge-Kutta 4 start (else k-diffusion's lower orders)
  int ipndm_order = 4;           // ipndm, ipndm-v: the highest Adams-Bashforth order (1 to 4)
  // restart: the interval [restart_tmin, restart_tmax] in sigma~ = sigma / alpha, the repeats K
  // and the Heun steps of each return.
  double restart_tmin = 0.06, restart_tmax = 0.3;
  int restart_k = 2, restart_steps = 3;
  AncestralVariance variance = AncestralVariance::Posterior;
  // er-sde: stages (1 to 3), the noise-scale function, and the points of the reference
  // implementations' Riemann sums for its integrals (0: exact).
  int er_sde_stages = 3;
  ErSdeNoise er_sde_noise = ErSdeNoise::Default;
  int er_sde_points = 0;
  // sa-solver: predictor and corrector orders (corrector 0: none), tau, and the sigma~ interval
  // where tau applies (0 outside).
  int sa_predictor_order = 3, sa_corrector_order = 4;
  double sa_tau = 1.0, sa_tau_min = 0.0, sa_tau_max = HUGE_VAL;

  // Adaptive samplers (Runge-Kutta and DPM-Solver-12/23): local error control.
  double rtol = 1e-5;
  double atol = 1e-5;
  int max_steps = 100000;     // accepted + rejected steps before giving up (error names t)
  bool dense_output = false;  // Runge-Kutta: dense-output stepper instead of controlled
  // Adaptive DPM-Solver (dpm-solver-12/23, dpmpp-12/23): the largest growth of h per attempt
  // (infinity: none, as the official controller) and whether the factor E^(-1/k) is rounded to
  // float32 first (the official controller's torch .float()).
  double max_growth = 5.0;
  bool factor_float32 = false;

  // The NFE budget a sampler may spend exactly (the grid must have steps_for_nfe steps):
  // dpm-solver-fast (its order schedule) and dpm-solver-2 (2, ..., 2, 1 for an odd budget).
  int nfe_budget = 0;
  // dpm-solver-1/2/3 and dpm-solver-fast: DPM-Solver's official singlestep rule (the order
  // schedule of the budget, each step of order k over k grid intervals whose inner nodes are its
  // intermediate points; docs/theory.md section 4.5) instead of fixed ratios in lambda on one
  // grid interval per step.
  bool singlestep_official = false;

  // DPM-Solver++ 3M: "derived" (default, coefficients from the Taylor expansion in lambda) or
  // "reference" (the widely used implementation's update; see dpm_solver_pp.cpp).
  bool dpmpp3m_reference = false;
  UniPCVariant unipc_variant = UniPCVariant::Bh2;
  LowerOrderFinal lower_order_final = LowerOrderFinal::Below10;

  // EDM stochastic Heun (Karras et al. 2022, Algorithm 2).
  double s_churn = 0.0;
  double s_tmin = 0.0;
  double s_tmax = 1e30;
  double s_noise = 1.0;

  // Predictor-corrector and Langevin dynamics.
  PCPredictor pc_predictor = PCPredictor::ReverseDiffusion;
  int corrector_steps = 1;
  double snr = 0.16;           // Langevin corrector signal-to-noise ratio r
  int langevin_steps = 100;    // annealed Langevin: K steps per noise level
  double langevin_eps = 2e-5;  // annealed Langevin: step scale e
};

std::unique_ptr<Sampler> make_euler_maruyama(const SamplerOptions&);
std::unique_ptr<Sampler> make_euler(const SamplerOptions&);
std::unique_ptr<Sampler> make_heun(const SamplerOptions&);
std::unique_ptr<Sampler> make_rk4(const SamplerOptions&);
std::unique_ptr<Sampler> make_ancestral(const SamplerOptions&);
std::unique_ptr<Sampler> make_ddim(const SamplerOptions&);
// Exponential integrators in lambda (dpm_solver.cpp, dpm_solver_pp.cpp, sde_dpm_solver_pp.cpp,
// dpm_solver_adaptive.cpp, unipc.cpp).
std::unique_ptr<Sampler> make_dpm_solver(int order, const SamplerOptions&);  // singlestep 1, 2, 3
std::unique_ptr<Sampler> make_dpm_solver_fast(const SamplerOptions&);        // order schedule
std::unique_ptr<Sampler> make_dpmpp(const std::string& variant,
                                    const SamplerOptions&);  // 1, 2s, 2m, 3m
std::unique_ptr<Sampler> make_sde_dpmpp_2m(const SamplerOptions&);
// 12 -> 2, 23 -> 3; `data`: DPM-Solver++'s data-prediction updates (dpmpp-12, dpmpp-23).
std::unique_ptr<Sampler> make_dpm_solver_adaptive(int order, const SamplerOptions&,
                                                  bool data = false);
std::unique_ptr<Sampler> make_unipc(int order, const SamplerOptions&);
// Black-box adaptive Runge-Kutta on the PF-ODE through Boost.Odeint (adaptive_rk.cpp).
std::unique_ptr<Sampler> make_dopri5(const SamplerOptions&);
std::unique_ptr<Sampler> make_cash_karp(const SamplerOptions&);
std::unique_ptr<Sampler> make_fehlberg78(const SamplerOptions&);
// EDM (edm_heun.cpp), Langevin (predictor_corrector.cpp, annealed_langevin.cpp), SRA (sra.cpp).
std::unique_ptr<Sampler> make_edm_heun(const SamplerOptions&);
// The k-diffusion family in sigma~ = sigma / alpha (euler_ancestral.cpp, dpm_2.cpp, lms.cpp,
// dpmpp_2s_ancestral.cpp, dpmpp_sde.cpp, dpmpp_multistep_sde.cpp).
std::unique_ptr<Sampler> make_euler_ancestral(const SamplerOptions&);
std::unique_ptr<Sampler> make_dpm_2(const SamplerOptions&);
std::unique_ptr<Sampler> make_lms(const SamplerOptions&);
std::unique_ptr<Sampler> make_dpmpp_2s_ancestral(const SamplerOptions&);
// Adams-Bashforth in sigma~ (ipndm.cpp) and DEIS tAB-k in t (deis.cpp, k = 1..3).
std::unique_ptr<Sampler> make_ipndm(const SamplerOptions&);
std::unique_ptr<Sampler> make_ipndm_v(const SamplerOptions&);
std::unique_ptr<Sampler> make_deis(int k, const SamplerOptions&);
// RES multistep: exact exponential integral of the linearly extrapolated x0 (res_multistep.cpp).
std::unique_ptr<Sampler> make_res_multistep(const SamplerOptions&);
// Restart sampling: Heun in sigma~ with forward re-noising over one interval (restart.cpp).
std::unique_ptr<Sampler> make_restart(const SamplerOptions&);
// ER-SDE-Solver in sigma~ (er_sde.cpp) and SA-Solver in lambda (sa_solver.cpp).
std::unique_ptr<Sampler> make_er_sde(const SamplerOptions&);
std::unique_ptr<Sampler> make_sa_solver(const SamplerOptions&);
/// SA-Solver's weights int_{ls}^{lt} c e^{-c (lt - l)} L_j(l) dl for the Lagrange basis on
/// nodes[0..n) (n <= 5).
std::array<double, 5> sa_solver_weights(const std::array<double, 5>& nodes, int n, double ls,
                                        double lt, double c);
/// ipndm-v's coefficients of order p (1..4) for the step h after the steps h1, h2, h3 (in
/// sigma~, newest first), newest slope first.
std::array<double, 4> ipndm_v_coefficients(int p, double h, double h1, double h2, double h3);
/// DEIS's C_j = integral_a^b sigma~'(tau) L_j(tau) dtau for the Lagrange basis on nodes[0..p).
std::array<double, 4> deis_coefficients(const std::function<double(double)>& sigma_tilde,
                                        const std::array<double, 4>& nodes, int p, double a,
                                        double b);
std::unique_ptr<Sampler> make_dpmpp_sde(const SamplerOptions&);
std::unique_ptr<Sampler> make_dpmpp_multistep_sde(int order, const SamplerOptions&);  // 2 or 3
std::unique_ptr<Sampler> make_predictor_corrector(const SamplerOptions&);
std::unique_ptr<Sampler> make_annealed_langevin(const SamplerOptions&);
std::unique_ptr<Sampler> make_sra(const SamplerOptions&);
// One-step and multistep consistency sampling of a consistency function (consistency.cpp).
std::unique_ptr<Sampler> make_consistency(const SamplerOptions&);

}  // namespace sdekit
