#include "experiments/optimize_grid.hpp"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#if SDEKIT_WITH_NLOPT
#include <nlopt.hpp>
#endif

#include "experiments/detail/common_fields.hpp"
#include "experiments/detail/report_util.hpp"
#include "experiments/table.hpp"
#include "models/dtype.hpp"
#include "networks/loader.hpp"
#include "schedules/registry.hpp"
#include "schedules/time_grid.hpp"
#include "solvers/registry.hpp"
#include "solvers/sample.hpp"

namespace sdekit {

namespace {

struct Problem {
  ScoreModel* model;
  const SDE* sde;
  const NoiseSchedule* k;
  const Sampler* sampler;
  double t_start, t_end, lam0, lam1;
  int steps;
};

double rms_of(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).pow(2).mean().sqrt().item<double>();
}

at::Tensor run_grid(const Problem& p, const std::vector<double>& times, const at::Tensor& xT) {
  SampleRequest r;
  r.model = p.model;
  r.sde = p.sde;
  r.times = times;
  r.x_init = xT;
  return p.sampler->run(r).x;
}

#if SDEKIT_WITH_NLOPT
// Grid from log step sizes: theta[0] = 0 fixed, steps h_i = e^theta_i / sum e^theta in lambda.
std::vector<double> grid_of(const Problem& p, const std::vector<double>& theta_free) {
  std::vector<double> w(static_cast<size_t>(p.steps));
  w[0] = 1.0;
  double sum = 1.0;
  for (int i = 1; i < p.steps; ++i) {
    w[size_t(i)] = std::exp(theta_free[size_t(i - 1)]);
    sum += w[size_t(i)];
  }
  std::vector<double> g(static_cast<size_t>(p.steps) + 1);
  g[0] = p.t_start;
  double acc = 0.0;
  for (int i = 1; i < p.steps; ++i) {
    acc += w[size_t(i - 1)] / sum;
    g[size_t(i)] = p.k->t_of_lambda(p.lam0 + acc * (p.lam1 - p.lam0));
  }
  g.back() = p.t_end;
  return g;
}

// Inverse of grid_of for a strictly decreasing grid.
std::vector<double> theta_of(const Problem& p, const std::vector<double>& g) {
  std::vector<double> th;
  const double h0 = p.k->lambda(g[1]) - p.k->lambda(g[0]);
  for (int i = 1; i < p.steps; ++i) {
    const double h = p.k->lambda(g[size_t(i + 1)]) - p.k->lambda(g[size_t(i)]);
    th.push_back(std::log(h / h0));
  }
  return th;
}
#endif

}  // namespace

bool optimize_grid_available() {
  return SDEKIT_WITH_NLOPT != 0;
}

OptimizeGridReport optimize_grid(const OptimizeGridSpec& spec) {
  const auto t0 = std::chrono::steady_clock::now();
  const SDEPtr sde = detail::with_field("sde", [&] { return make_sde(spec.sde); });
  const SchedulePtr k = sde->schedule();
  if (!k) throw std::invalid_argument("field 'sde': '" + spec.sde + "' has no Gaussian kernel");
  const auto sampler = detail::with_field("sampler", [&] { return make_sampler(spec.sampler); });
  if (sampler->stochastic() || sampler->adaptive() || sampler->consistency())
    throw std::invalid_argument("field 'sampler': '" + spec.sampler +
                                "' is not a fixed-step deterministic sampler");
  const int steps = detail::with_field("nfe", [&] { return sampler->steps_for_nfe(spec.nfe); });
  if (spec.n_calib < 1 || spec.n_test < 1)
    throw std::invalid_argument("field 'n_calib' / 'n_test': needs >= 1 rows");
  if (spec.max_evals < 1)
    throw std::invalid_argument("field 'max_evals': must be >= 1, got " +
                                std::to_string(spec.max_evals));
  const GridKind init = detail::with_field("init", [&] { return parse_grid(spec.init); });
  if (init == GridKind::File) throw std::invalid_argument("field 'init': a named grid, not a file");
  const at::ScalarType dtype = detail::with_field("dtype", [&] { return parse_dtype(spec.dtype); });
  ModelOptions mo = detail::study_model_options(spec.param, spec.event_shape);
  LoadedModel lm = detail::with_field("model", [&] { return load_model(spec.model, k, mo); });

  OptimizeGridReport rep;
  rep.spec = spec;
  rep.steps = steps;
  rep.t_start = sde->domain().hi;
  rep.t_end = spec.t_end < 0 ? sde->default_t_end() : spec.t_end;
  if (!(rep.t_end > sde->domain().lo && rep.t_end < rep.t_start))
    throw std::invalid_argument("field 't_end': must lie inside the SDE's time domain");
  Problem p{lm.model.get(),
            sde.get(),
            k.get(),
            sampler.get(),
            rep.t_start,
            rep.t_end,
            k->lambda(rep.t_start),
            k->lambda(rep.t_end),
            steps};

  // Calibration and held-out rows, and their references.
  std::vector<int64_t> shape = {0};
  shape.insert(shape.end(), lm.event_shape.begin(), lm.event_shape.end());
  auto draw = [&](int64_t n, uint64_t seed) {
    shape[0] = n;
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
    return at::randn(shape, g, at::kDouble).mul(sde->prior_std()).to(dtype);
  };
  const at::Tensor xc = draw(spec.n_calib, spec.seed), xt = draw(spec.n_test, spec.seed + 1);
  SamplerOptions ro;
  ro.rtol = ro.atol = spec.ref_tol;
  const auto ref = make_sampler("dopri5", ro);
  auto reference = [&](const at::Tensor& x) {
    SampleRequest r;
    r.model = p.model;
    r.sde = p.sde;
    r.times = {rep.t_start, rep.t_end};
    r.x_init = x;
    return ref->run(r).x;
  };
  const at::Tensor rc = reference(xc), rt = reference(xt);

  const std::vector<double> g0 = make_time_grid(init, *k, steps, rep.t_start, rep.t_end);
  std::vector<double> best = g0;
  double best_err = rms_of(run_grid(p, g0, xc), rc);
  rep.evals = 1;
  rep.stop_reason = "no interior time to move (1 step)";
  if (steps >= 2) {
#if SDEKIT_WITH_NLOPT
    std::vector<double> theta = theta_of(p, g0);
    struct Ctx {
      const Problem* p;
      const at::Tensor *xc, *rc;
      std::vector<double>* best;
      double* best_err;
      int* evals;
    } ctx{&p, &xc, &rc, &best, &best_err, &rep.evals};
    auto objective = [](const std::vector<double>& th, std::vector<double>&, void* data) {
      auto& c = *static_cast<Ctx*>(data);
      const std::vector<double> g = grid_of(*c.p, th);
      for (size_t i = 1; i < g.size(); ++i)
        if (!(g[i] < g[i - 1])) return 1e30;  // steps below the schedule's resolution
      const double e = rms_of(run_grid(*c.p, g, *c.xc), *c.rc);
      ++*c.evals;
      if (std::isfinite(e) && e < *c.best_err) {
        *c.best_err = e;
        *c.best = g;
      }
      return std::isfinite(e) ? std::log(e) : 1e30;
    };
    const int n = steps - 1;
    nlopt::opt opt(n >= 2 ? nlopt::LN_BOBYQA : nlopt::LN_COBYLA, static_cast<unsigned>(n));
    opt.set_min_objective(objective, &ctx);
    opt.set_lower_bounds(std::vector<double>(size_t(n), -8.0));
    opt.set_upper_bounds(std::vector<double>(size_t(n), 8.0));
    opt.set_xtol_rel(spec.xtol);
    opt.set_maxeval(spec.max_evals - 1);
    opt.set_initial_step(0.5);
    for (double& v : theta) v = std::min(7.9, std::max(-7.9, v));
    double fmin = 0.0;
    try {
      const nlopt::result res = opt.optimize(theta, fmin);
      rep.stop_reason = res == nlopt::MAXEVAL_REACHED ? "max_evals reached"
                        : res == nlopt::XTOL_REACHED  ? "xtol reached"
                        : res == nlopt::FTOL_REACHED  ? "ftol reached"
                                                      : "converged";
    } catch (const nlopt::roundoff_limited&) {
      rep.stop_reason = "stopped by roundoff (best point kept)";
    } catch (const std::runtime_error& e) {
      rep.stop_reason = std::string("stopped: ") + e.what() + " (best point kept)";
    }
#else
    throw std::runtime_error(
        "optimize-grid: this sdekit was built without NLopt (Debian libnlopt-cxx-dev)");
#endif
  }
  rep.times = best;
  rep.scores.push_back({"optimized", best_err, rms_of(run_grid(p, best, xt), rt)});
  for (GridKind g : {GridKind::UniformLambda, GridKind::Quadratic, GridKind::Karras,
                     GridKind::UniformT, GridKind::KlOptimal}) {
    std::vector<double> times;
    try {
      times = make_time_grid(g, *k, steps, rep.t_start, rep.t_end);
    } catch (const std::invalid_argument&) {
      continue;
    }
    rep.scores.push_back(
        {grid_name(g), rms_of(run_grid(p, times, xc), rc), rms_of(run_grid(p, times, xt), rt)});
  }
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

std::string optimize_grid_json(const OptimizeGridReport& r) {
  nlohmann::json j;
  j["model"] = r.spec.model;
  j["sde"] = r.spec.sde;
  j["sampler"] = r.spec.sampler;
  j["nfe"] = r.spec.nfe;
  j["steps"] = r.steps;
  j["n_calib"] = r.spec.n_calib;
  j["n_test"] = r.spec.n_test;
  j["seed"] = r.spec.seed;
  j["init"] = r.spec.init;
  j["evals"] = r.evals;
  j["seconds"] = r.seconds;
  j["stop_reason"] = r.stop_reason;
  j["times"] = r.times;
  j["scores"] = nlohmann::json::array();
  for (const auto& s : r.scores)
    j["scores"].push_back({{"grid", s.grid},
                           {"calib_rms", detail::json_num(s.calib_rms)},
                           {"test_rms", detail::json_num(s.test_rms)}});
  return j.dump(2);
}

void write_optimized_grid(const OptimizeGridReport& r, const std::string& path) {
  nlohmann::json j = nlohmann::json::parse(optimize_grid_json(r));
  j.erase("times");
  j.erase("sde");
  write_grid_file(path, r.times, r.spec.sde, j.dump());
}

std::string optimize_grid_markdown(const OptimizeGridReport& r) {
  std::ostringstream os;
  os << "Model " << r.spec.model << ", SDE " << r.spec.sde << ", sampler " << r.spec.sampler
     << " at " << r.spec.nfe << " NFE (" << r.steps << " steps), t " << r.t_start << " -> "
     << r.t_end << ", " << r.spec.dtype
     << ". RMS error against dopri5 (rtol = atol = " << r.spec.ref_tol
     << ") from the same x_T: " << r.spec.n_calib << " calibration rows (seed " << r.spec.seed
     << "), " << r.spec.n_test << " held-out rows (seed " << r.spec.seed + 1
     << "). BOBYQA from the " << r.spec.init << " grid: " << r.evals << " evaluations, "
     << r.stop_reason << ", " << detail::fmt(r.seconds, 3) << " s.\n\n";
  Table t;
  t.column("grid", Table::Align::Left).column("calibration RMS").column("held-out RMS");
  for (const auto& s : r.scores)
    t.row({s.grid, detail::fmt(s.calib_rms, 4), detail::fmt(s.test_rms, 4)});
  os << t.markdown();
  return os.str();
}

}  // namespace sdekit
