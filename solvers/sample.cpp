#include "solvers/sample.hpp"

#include <sstream>
#include <stdexcept>

#include "solvers/noise.hpp"

namespace sdekit {

std::vector<double> spec_grid(const SDE& sde, const SampleSpec& spec,
                              const std::vector<int>& groups) {
  const Interval d = sde.domain();
  const double t_end = spec.t_end < 0 ? sde.default_t_end() : spec.t_end;
  if (!(t_end > d.lo && t_end < d.hi)) {
    std::ostringstream os;
    os << "t_end must lie in (" << d.lo << ", " << d.hi << ") for SDE " << sde.name() << ", got "
       << t_end;
    throw std::invalid_argument(os.str());
  }
  if (spec.steps < 1)
    throw std::invalid_argument("steps must be >= 1, got " + std::to_string(spec.steps));
  if (spec.to_zero && spec.steps < 2)
    throw std::invalid_argument(
        "steps must be >= 2 with the step to sigma = 0 (one grid step and the step to 0), got " +
        std::to_string(spec.steps));
  const int steps = spec.to_zero ? spec.steps - 1 : spec.steps;
  const SchedulePtr kernel = sde.schedule();
  if (!kernel) {
    const GridKind kind = spec.grid.value_or(GridKind::UniformT);
    if (kind != GridKind::UniformT)
      throw std::invalid_argument("grid " + grid_name(kind) +
                                  " needs an SDE with a Gaussian kernel; SDE " + sde.name() +
                                  " has none (use uniform-t)");
    std::vector<double> g(static_cast<size_t>(steps) + 1);
    for (int i = 0; i <= steps; ++i)
      g[i] = d.hi + (static_cast<double>(i) / steps) * (t_end - d.hi);
    g.back() = t_end;
    return g;
  }
  GridOptions opt;
  opt.file = spec.grid_file;
  opt.groups = groups;
  return make_time_grid(spec.grid.value_or(default_grid(*kernel)), *kernel, steps, d.hi, t_end,
                        opt);
}

SampleResult sample(const Sampler& sampler, ScoreModel& model, const SDE& sde,
                    const SampleSpec& spec, const StepObserver& observer) {
  SampleRequest req;
  req.model = &model;
  req.sde = &sde;
  req.times = spec_grid(sde, spec, sampler.grid_groups(spec.to_zero ? spec.steps - 1 : spec.steps));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(spec.seed);
  if (spec.x_init.defined()) {
    req.x_init = spec.x_init.to(spec.options);
  } else {
    if (spec.n < 1) throw std::invalid_argument("n must be >= 1, got " + std::to_string(spec.n));
    if (spec.event_shape.empty())
      throw std::invalid_argument("event_shape is empty: give the shape of one sample");
    std::vector<int64_t> shape{spec.n};
    shape.insert(shape.end(), spec.event_shape.begin(), spec.event_shape.end());
    if (spec.rng == RngKind::Rows)
      req.x_init =
          row_normal(shape, spec.options, spec.seed, spec.first_row, 0).mul_(sde.prior_std());
    else
      req.x_init = draw_prior(sde, shape, gen, spec.options);
  }
  req.generator = gen;
  req.finite_check = spec.finite_check;
  req.brownian = spec.brownian;
  req.noise = spec.noise;
  if (spec.rng == RngKind::Rows && !req.noise && !req.brownian && sampler.stochastic())
    req.noise = NoiseReplay::rows(spec.seed, spec.first_row);
  req.to_zero = spec.to_zero;
  return sampler.run(req, observer);
}

SampleResult sample_rows(const Sampler& sampler, ScoreModel& model, const SDE& sde,
                         const SampleSpec& spec, int64_t lo, int64_t hi, int64_t batch) {
  const int64_t n = spec.x_init.defined() ? spec.x_init.size(0) : spec.n;
  if (lo < 0 || hi > n || lo >= hi)
    throw std::invalid_argument("sample_rows: rows [" + std::to_string(lo) + ", " +
                                std::to_string(hi) + ") of a run of " + std::to_string(n));
  if (batch < 0) throw std::invalid_argument("batch must be >= 0, got " + std::to_string(batch));
  const int64_t step = batch == 0 ? hi - lo : batch;
  const bool whole = lo == 0 && hi == n && step >= n;
  if (!whole) {
    if (spec.brownian)
      throw std::invalid_argument(
          "a Brownian path spans the whole batch: it cannot be split over batches or processes "
          "(sample without --brownian, or in one batch in one process)");
    if (spec.rng == RngKind::Generator && !spec.noise)
      throw std::invalid_argument(
          "--rng generator: one generator's stream depends on the batch; split runs need the "
          "row-keyed noise (--rng rows)");
  }
  SampleResult out;
  std::vector<at::Tensor> parts;
  for (int64_t a = lo; a < hi; a += step) {
    const int64_t count = std::min(step, hi - a);
    SampleSpec b = spec;
    b.n = count;
    b.first_row = spec.first_row + a;
    if (spec.x_init.defined()) b.x_init = spec.x_init.narrow(0, a, count);
    if (spec.noise && !whole) b.noise = spec.noise->rows_slice(a, count);
    SampleResult r = sample(sampler, model, sde, b);
    if (parts.empty()) {
      out.nfe = r.nfe;
      out.steps = r.steps;
    }
    out.attempts += r.attempts;
    parts.push_back(r.x);
  }
  out.x = parts.size() == 1 ? parts[0] : at::cat(parts, 0);
  return out;
}

}  // namespace sdekit
