#pragma once
// Likelihoods through the probability-flow ODE (docs/theory.md section 8): per-sample
// log-densities of data at t_end, log p_{t_end}(x) = log p_T(x_T) + the integral of the velocity's
// divergence, for a list of solver settings (cells: tolerances of an adaptive sampler, or NFE
// budgets of a fixed-step one), with their errors against the exact log-density (mixture data
// under the exact model) or against the most accurate cell, and the fitted order. Resumable
// cell by cell (ResultsStore).
// The variational bounds (method elbo, experiments/elbo.hpp, docs/theory.md section 9) give one
// cell: DDPM's discrete bound under vp-discrete (data at t = 0) or the continuous-time bound of
// the reverse SDE (data at t_end), with their prior, diffusion and decoder terms apart.
//
// Units: nats per sample; bits per dimension = NLL / (D ln 2), plus 7 for Fashion-MNIST, whose
// 8-bit images are dequantized as x = (byte + u) / 128 - 1 with u ~ U[0, 1) (the change of
// variables from [0, 256)^D to [-1, 1)^D scales densities by 128^D: score_sde's convention for
// centred data).
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "experiments/spec_schema.hpp"
#include "experiments/study.hpp"

namespace sdekit {

struct LikelihoodSpec {
  std::string model = "gmm64";
  std::string sde = "vp-linear";
  std::string data = "mixture";  // mixture | fashion-mnist | npy:FILE.npy
  int64_t n = 64;
  uint64_t seed = 0;
  // rows: every random draw of row i (Hutchinson probes, the bound's times and noise) depends only
  // on (seed, i), the same over any number of processes (docs/theory.md section 10.1). The only
  // kind; stored in spec.json so that results of an earlier convention are not resumed.
  std::string rng = "rows";
  std::string method = "ode";     // ode | elbo
  std::string bound = "auto";     // elbo: auto (ddpm under vp-discrete) | ddpm | continuous
  int64_t timesteps = 64;         // elbo: stratified draws of the time per row
  std::string variance = "beta";  // ddpm: beta | posterior
  std::string decoder =
      "auto";                 // ddpm: auto (discretized for 8-bit images) | gaussian | discretized
  double decoder_std = 1e-3;  // continuous: the decoder's relative standard deviation
  std::string divergence = "auto";   // auto (exact for D <= 64) | exact | hutchinson
  int64_t probes = 4;                // Hutchinson
  std::string probe = "rademacher";  // rademacher | gaussian
  std::string sampler = "dopri5";
  std::vector<double> tolerances = {1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8};  // adaptive samplers
  std::vector<int> nfe = {8, 16, 32, 64, 128};                            // fixed-step samplers
  std::string grid;                // fixed-step samplers (default: the schedule's)
  std::string prior = "gaussian";  // gaussian (N(0, prior_std^2 I)) | exact (the mixture's p_T)
  std::string dtype = "float64";
  double t_end = -1.0;      // < 0: the SDE's default
  int64_t label = -1;       // class-conditional models: -1 the null label (p(x)), k: p(x | k)
  std::string reference;    // npy:FILE.npy: per-row NLL (nats) to measure the errors against
  std::string param;        // TorchScript models
  std::string event_shape;  // TorchScript models
};

/// Throws std::invalid_argument naming the field: unknown model, SDE (or one without a
/// Gaussian kernel), data, divergence, probe kind, prior, sampler (or a stochastic one), method,
/// bound (ddpm outside vp-discrete), variance, decoder (discretized data not 8-bit), timesteps
/// out of range, decoder_std outside (0, 1); n < 1; probes < 1; empty or non-positive
/// tolerances / NFE; prior exact without an exact mixture; data whose shape does not fit the
/// model; a reference file without n finite rows; for the ODE, a model that cannot give
/// gradients.
void validate(const LikelihoodSpec& spec);
const SpecSchema<LikelihoodSpec>& likelihood_spec_schema();
std::string likelihood_spec_json(const LikelihoodSpec& spec);
LikelihoodSpec likelihood_spec_from_json(const std::string& text, const std::string& source);

struct LikelihoodCell {
  double tolerance = 0.0;  // adaptive samplers
  int target_nfe = 0;      // fixed-step samplers
  int64_t nfe = 0;         // model calls of the solve
  double seconds = 0.0;
  double mean_nll = std::numeric_limits<double>::quiet_NaN();  // nats per sample
  double se_nll = 0.0;  // standard error of the mean over samples
  double bpd = std::numeric_limits<double>::quiet_NaN();
  double mean_prior = 0.0, mean_delta = 0.0;  // log p_T(x_T) and the divergence integral
  double hutchinson_se = 0.0;  // the probes' standard error of mean_nll (0 when exact)
  bool elbo = false;           // a variational bound: mean_nll is the bound's mean, mean_prior
                               // its L_T, mean_delta its diffusion term, mean_decoder L_0
  double mean_decoder = 0.0;
  double prior_mismatch = std::numeric_limits<double>::quiet_NaN();  // exact - Gaussian prior
  double error = std::numeric_limits<double>::quiet_NaN();           // mean |log p - reference|
  double max_error = std::numeric_limits<double>::quiet_NaN();
  /// Mean over rows of NLL - reference NLL (signed: a bound's gap) and its standard error.
  double gap = std::numeric_limits<double>::quiet_NaN(), gap_se = 0.0;
  bool resumed = false;
  std::string key() const;  // "tol=1e-06", "nfe=32" or "elbo"
};

struct LikelihoodReport {
  LikelihoodSpec spec;
  std::string divergence, data, reference, grid;
  std::string bound;                     // elbo: ddpm | continuous
  double t_end = 0.0, bpd_offset = 0.0;  // the data's time (0 for the DDPM bound)
  int64_t dim = 0;
  std::vector<LikelihoodCell> cells;
  double order = std::numeric_limits<double>::quiet_NaN(), order_se = 0.0;
  /// Mixture data: the most accurate cell's log p minus the exact log p(t_end), mean over rows
  /// (with the Gaussian prior: its mismatch, to the solver's error).
  double exact_gap = std::numeric_limits<double>::quiet_NaN();
  /// Exact mixtures: mean over rows of log p_{t_end}(x) - log p_0(x), what taking the data as
  /// points of p_{t_end} instead of p_0 changes (the ODE's t_end contribution).
  double t_end_term = std::numeric_limits<double>::quiet_NaN();
  std::size_t resumed = 0, computed = 0;
};

LikelihoodReport run_likelihood(const LikelihoodSpec& spec, const std::string& out_dir, bool fresh,
                                const StudyProgressFn& progress = {});

std::string likelihood_protocol(const LikelihoodReport& report);
std::string likelihood_markdown(const LikelihoodReport& report);
std::string likelihood_report_json(const LikelihoodReport& report);
/// results.csv and results.md in out_dir.
void write_likelihood_tables(const LikelihoodReport& report, const std::string& out_dir);

}  // namespace sdekit
