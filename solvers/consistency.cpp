// "consistency": one-step and multistep consistency sampling (Song et al. 2023, Algorithm 1) on
// the request's grid t_0 > t_1 > ... > t_K = t_end, for a model whose consistency_end() is t_end.
// Step i evaluates x_end = f(x, t_i) (1 NFE); before the next evaluation the sample is noised
// back to t_{i+1} through the kernel, x = (alpha_{i+1} / alpha_end) x_end + c z with
// c^2 = sigma_{i+1}^2 - (alpha_{i+1} sigma_end / alpha_end)^2 (EDM's x + sqrt(tau^2 - eps^2) z in
// x / alpha). The last step returns x_end. One step (K = 1) is deterministic: f(x_T, T).
// Also the exact consistency function (solvers/consistency.hpp).
#include "solvers/consistency.hpp"

#include <cmath>
#include <map>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "solvers/reference.hpp"
#include "solvers/samplers.hpp"

namespace sdekit {

ExactConsistency::ExactConsistency(std::shared_ptr<ScoreModel> model, SDEPtr sde, double t_end,
                                   double rtol, double atol)
    : model_(std::move(model)), sde_(std::move(sde)), t_end_(t_end), rtol_(rtol), atol_(atol) {
  if (!model_ || !sde_) throw std::invalid_argument("exact consistency function: null model/SDE");
  const Interval d = sde_->domain();
  if (!(t_end > d.lo && t_end <= d.hi))
    throw std::invalid_argument("exact consistency function: t_end = " + std::to_string(t_end) +
                                " lies outside the domain of " + sde_->name());
  if (!(rtol > 0.0 && atol > 0.0))
    throw std::invalid_argument("exact consistency function: tolerances must be > 0");
}

std::string ExactConsistency::name() const {
  std::ostringstream os;
  os << "exact consistency function of " << model_->name() << " (PF-ODE by dopri5, rtol " << rtol_
     << ")";
  return os.str();
}

at::Tensor ExactConsistency::predict_at(const at::Tensor& x, double t) {
  if (t == t_end_) return x.clone();
  SampleRequest r;
  r.model = model_.get();
  r.sde = sde_.get();
  r.times = {t, t_end_};
  r.x_init = x.to(at::kDouble);
  SamplerOptions o;
  o.rtol = rtol_;
  o.atol = atol_;
  const AdaptiveSolution s = adaptive_solve("dopri5", o, r);
  solver_nfe_ += s.stats.nfe;
  return s.x.to(x.scalar_type());
}

at::Tensor ExactConsistency::predict(const at::Tensor& x, const at::Tensor& t) {
  const at::Tensor tc = t.reshape({-1}).to(at::kCPU, at::kDouble).contiguous();
  if (tc.size(0) != x.size(0))
    throw std::invalid_argument("exact consistency function: t has " + std::to_string(tc.size(0)) +
                                " entries for " + std::to_string(x.size(0)) + " rows");
  std::map<double, std::vector<int64_t>> rows;
  for (int64_t i = 0; i < tc.size(0); ++i) rows[tc.data_ptr<double>()[i]].push_back(i);
  if (rows.size() == 1) return predict_at(x, rows.begin()->first);
  at::Tensor out = at::empty_like(x);
  for (const auto& [time, idx] : rows) {
    const at::Tensor sel = at::tensor(idx, at::kLong).to(x.device());
    out.index_copy_(0, sel, predict_at(x.index_select(0, sel), time));
  }
  return out;
}

namespace {
class ConsistencySampler final : public Sampler {
 public:
  std::string_view name() const override { return "consistency"; }
  double order() const override { return 0.0; }  // not an integrator: no order in the steps
  bool stochastic() const override { return true; }
  int nfe_per_step() const override { return 1; }
  bool needs_kernel() const override { return true; }
  bool consistency() const override { return true; }

 protected:
  at::Tensor integrate(const RunContext& ctx, const at::Tensor& x_init) const override {
    ScoreModel& f = ctx.predictor.model();
    const double t_end = *f.consistency_end();
    const double last = ctx.times.back();
    if (std::abs(last - t_end) > 1e-9 * std::max(1.0, std::abs(t_end))) {
      std::ostringstream os;
      os << "sampler consistency: the grid ends at t = " << last << " but the model's "
         << "trajectories end at t_end = " << t_end << " (pass --t-end " << t_end << ")";
      throw std::invalid_argument(os.str());
    }
    const NoiseSchedule& k = *ctx.kernel;
    const double log_alpha_end = k.log_alpha(t_end), sigma_end = k.sigma(t_end);
    const int steps = ctx.steps();
    at::Tensor x = x_init;
    for (int i = 0; i < steps; ++i) {
      const double s = ctx.times[i], t = ctx.times[i + 1];
      at::Tensor out = f.predict_at(x, s);
      if (i + 1 < steps) {
        const double r = std::exp(k.log_alpha(t) - log_alpha_end), sig = k.sigma(t);
        const double c = std::sqrt(std::max(0.0, sig * sig - r * r * sigma_end * sigma_end));
        out = out.mul(r).add_(ctx.standard_normal(x, s, t), c);
      }
      ctx.step_done(i, steps, s, t, x, out, i + 1 == steps);
      x = out;
    }
    return x;
  }
};
}  // namespace

std::unique_ptr<Sampler> make_consistency(const SamplerOptions&) {
  return std::make_unique<ConsistencySampler>();
}

}  // namespace sdekit
