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
    req.x_init = draw_prior(sde, shape, gen, spec.options);
  }
  req.generator = gen;
  req.finite_check = spec.finite_check;
  req.brownian = spec.brownian;
  req.noise = spec.noise;
  req.to_zero = spec.to_zero;
  return sampler.run(req, observer);
}

}  // namespace sdekit
