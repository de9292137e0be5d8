#include "experiments/moments.hpp"

#include <chrono>
#include <stdexcept>

#include "solvers/noise.hpp"
#include "solvers/registry.hpp"
#include "solvers/sample.hpp"

namespace sdekit {

namespace {
void fill_errors(MomentsRow& row, const at::Tensor& x, const at::Tensor& m, const at::Tensor& C) {
  const MomentErrors e = moment_errors(x, m, C);
  row.mean_err = e.mean_err;
  row.cov_err = e.cov_err;
}
}  // namespace

MomentErrors moment_errors(const at::Tensor& x, const at::Tensor& m, const at::Tensor& C) {
  const at::Tensor xd = x.to(at::kCPU, at::kDouble);
  const at::Tensor mh = xd.mean(0);
  const at::Tensor xc = xd - mh;
  const at::Tensor Ch = at::matmul(xc.transpose(0, 1), xc) / static_cast<double>(xd.size(0) - 1);
  return {(mh - m).norm().item<double>(), ((Ch - C).norm() / C.norm()).item<double>()};
}

MomentsReport compare_moments(const GaussianMixture& mixture, const SDE& sde,
                              const MomentsSpec& spec) {
  const SchedulePtr kernel = sde.schedule();
  if (!kernel)
    throw std::invalid_argument("moments: SDE '" + sde.name() + "' has no Gaussian kernel");
  if (spec.n < 2)
    throw std::invalid_argument("moments: n must be >= 2, got " + std::to_string(spec.n));
  if (spec.samplers.empty()) throw std::invalid_argument("moments: no samplers given");
  MomentsReport rep;
  rep.t_end = spec.t_end < 0 ? sde.default_t_end() : spec.t_end;
  const double T = sde.domain().hi;
  make_time_grid(spec.grid, *kernel, spec.steps, T, rep.t_end);  // grid errors before any work
  const double a = kernel->alpha(rep.t_end), s = kernel->sigma(rep.t_end);
  const at::Tensor m = mixture.mean(a), C = mixture.covariance(a, s);
  for (int64_t i = 0; i < std::min<int64_t>(8, m.size(0)); ++i)
    rep.exact_mean.push_back(m[i].item<double>());

  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(spec.seed);
  const auto opts = at::TensorOptions().dtype(spec.dtype);
  const at::Tensor x_T = draw_prior(sde, {spec.n, mixture.dim()}, gen, opts);
  rep.floor.sampler = "exact samples";
  fill_errors(rep.floor, mixture.sample(spec.n, a, s, gen), m, C);

  GaussianMixtureModel model(mixture, kernel);
  SampleSpec sspec;
  sspec.steps = spec.steps;
  sspec.grid = spec.grid;
  sspec.t_end = rep.t_end;
  sspec.x_init = x_T;
  sspec.options = opts;
  sspec.seed = spec.seed + 1;
  for (const std::string& name : spec.samplers) {
    const auto sampler = make_sampler(name);
    const auto t0 = std::chrono::steady_clock::now();
    const SampleResult res = sample(*sampler, model, sde, sspec);
    MomentsRow row;
    row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    row.sampler = name;
    row.nfe = res.nfe;
    fill_errors(row, res.x, m, C);
    rep.rows.push_back(row);
  }
  return rep;
}

}  // namespace sdekit
