#include "solvers/sampler.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "solvers/detail/inplace.hpp"
#include "solvers/noise.hpp"

namespace sdekit {

void validate_request(const Sampler& sampler, const SampleRequest& r) {
  const std::string who = "sampler " + std::string(sampler.name());
  if (!r.model) throw std::invalid_argument(who + ": request.model is null");
  if (!r.sde) throw std::invalid_argument(who + ": request.sde is null");
  if (r.times.size() < 2)
    throw std::invalid_argument(who + ": request.times needs at least 2 entries, got " +
                                std::to_string(r.times.size()));
  const Interval d = r.sde->domain();
  const bool decreasing = r.times[1] < r.times[0];
  for (size_t i = 0; i < r.times.size(); ++i) {
    const double t = r.times[i];
    if (!(t > d.lo && t <= d.hi)) {
      std::ostringstream os;
      os << who << ": request.times[" << i << "] = " << t << " lies outside (" << d.lo << ", "
         << d.hi << "]";
      throw std::invalid_argument(os.str());
    }
    if (i > 0 && !(decreasing ? t < r.times[i - 1] : t > r.times[i - 1])) {
      std::ostringstream os;
      os << who << ": request.times must be strictly " << (decreasing ? "decreasing" : "increasing")
         << ", got times[" << i - 1 << "] = " << r.times[i - 1] << ", times[" << i << "] = " << t;
      throw std::invalid_argument(os.str());
    }
  }
  if (!decreasing && sampler.stochastic())
    throw std::invalid_argument(who +
                                ": increasing times (encoding) need a deterministic sampler; this "
                                "one is stochastic");
  if (!r.x_init.defined() || r.x_init.dim() < 2 || r.x_init.size(0) < 1)
    throw std::invalid_argument(who + ": request.x_init must be a batch [n, ...] with n >= 1");
  if (!at::isFloatingType(r.x_init.scalar_type()))
    throw std::invalid_argument(who + ": request.x_init must be floating point");
  if (!at::isfinite(r.x_init).all().item<bool>())
    throw std::invalid_argument(who + ": request.x_init holds non-finite values (NaN or inf)");
  if (sampler.stochastic() && !r.generator && !r.brownian && !r.noise)
    throw std::invalid_argument(
        who +
        ": stochastic sampler needs request.generator or request.brownian (or request.noise)");
  if (r.noise && r.brownian)
    throw std::invalid_argument(who + ": request.noise and request.brownian exclude each other");
  if (r.noise && !sampler.stochastic())
    throw std::invalid_argument(who + ": request.noise is given, but the sampler draws no noise");
  if (const auto end = r.model->consistency_end(); end && !sampler.consistency())
    throw std::invalid_argument(who + ": model '" + r.model->name() +
                                "' is a consistency function (it maps x_t to its trajectory's end, "
                                "not to a score); sample it with the 'consistency' sampler");
  if (!r.model->consistency_end() && sampler.consistency())
    throw std::invalid_argument(who + ": model '" + r.model->name() +
                                "' is not a consistency function (see models/consistency.hpp)");
  if (r.to_zero) {
    if (!decreasing)
      throw std::invalid_argument(who +
                                  ": request.to_zero (the step to sigma = 0) needs decreasing "
                                  "times; encoding runs away from the data");
    if (!r.sde->schedule())
      throw std::invalid_argument(who +
                                  ": request.to_zero (the step to sigma = 0) needs an SDE "
                                  "with a Gaussian kernel (alpha, sigma); '" +
                                  r.sde->name() + "' has none");
    if (sampler.consistency())
      throw std::invalid_argument(who +
                                  ": request.to_zero does not apply: a consistency function "
                                  "already maps to the data end");
  }
  if (sampler.needs_kernel() && !r.sde->schedule())
    throw std::invalid_argument(who + ": needs an SDE with a Gaussian kernel (alpha, sigma); '" +
                                r.sde->name() + "' has none");
}

bool RunContext::all_finite(const at::Tensor& x) const {
  // A contiguous CPU state is scanned in place (no dispatch, no allocation).
  if (x.is_cpu() && x.is_contiguous()) {
    const int64_t n = x.numel();
    if (x.scalar_type() == at::kFloat) {
      const float* p = x.data_ptr<float>();
      for (int64_t i = 0; i < n; ++i)
        if (!std::isfinite(p[i])) return false;
      return true;
    }
    if (x.scalar_type() == at::kDouble) {
      const double* p = x.data_ptr<double>();
      for (int64_t i = 0; i < n; ++i)
        if (!std::isfinite(p[i])) return false;
      return true;
    }
  }
  // Elsewhere the sum is finite iff every entry is (barring overflow of the sum, itself a
  // blow-up); it is reduced into a reused 0-dim buffer in x's dtype: one sync on CUDA.
  if (!sum_.defined() || sum_.scalar_type() != x.scalar_type() || sum_.device() != x.device())
    sum_ = at::zeros({}, x.options());
  at::sum_out(sum_, x.reshape({-1}), 0);
  return std::isfinite(sum_.item<double>());
}

RunContext::RunContext(const SampleRequest& r, const Predictor& predictor,
                       const CountingModel& counter, at::Generator* generator,
                       const StepObserver& observer, std::string_view sampler)
    : sde(*r.sde),
      kernel(predictor.kernel()),
      affine(dynamic_cast<const AffineSDE*>(r.sde) ? predictor.kernel() : nullptr),
      predictor(predictor),
      generator(generator),
      times(r.times),
      request_(r),
      counter_(counter),
      observer_(observer),
      sampler_(sampler) {}

int64_t RunContext::nfe() const {
  return counter_.count();
}

void RunContext::step_done(int index, int steps, double t_from, double t_to, const at::Tensor& prev,
                           const at::Tensor& x, bool final_step) const {
  const bool every = request_.finite_check == FiniteCheck::EveryStep;
  bool finite = true;
  if (every || final_step) finite = all_finite(x);
  if (!finite) {
    std::ostringstream os;
    os << "sampler " << sampler_ << ": non-finite values (NaN or inf) ";
    if (every) {
      os << "after step " << index << " from t = " << t_from << " to t = " << t_to;
      // Say where they came from: one uncounted model call on the step's finite input, made
      // only on this failure path.
      if (all_finite(prev)) {
        bool model_finite = true;
        try {
          model_finite = all_finite(request_.model->predict_at(prev, t_from));
        } catch (const std::exception&) {
        }
        os << (model_finite ? ": the step's input and the model's prediction at t = " +
                                  std::to_string(t_from) +
                                  " are finite, so the step itself blew up (try more steps or "
                                  "another sampler)"
                            : ": the model '" + request_.model->name() +
                                  "' produced non-finite values from finite input at t = " +
                                  std::to_string(t_from));
      }
    } else
      os << "at the end of the run (checked only there: FiniteCheck::EveryStep names the step)";
    throw NonFiniteError(os.str(), index, t_from, t_to, every ? prev : request_.x_init);
  }
  if (observer_) observer_(StepInfo{index, steps, t_from, t_to, x, counter_.count()});
}

at::Tensor RunContext::wiener(const at::Tensor& x, double s, double t) const {
  if (request_.brownian) return request_.brownian->increment(t, s, x);
  return standard_normal(x, s, t).mul_(std::sqrt(std::abs(s - t)));
}

at::Tensor RunContext::standard_normal(const at::Tensor& x, double s, double t) const {
  if (request_.brownian)
    return request_.brownian->increment(t, s, x).div_(std::sqrt(std::abs(s - t)));
  if (request_.noise) return request_.noise->next(x);
  return normal_like(x, *generator);
}

void RunContext::generator_normal_into(at::Tensor& out) const {
  if (request_.noise) return request_.noise->next_into(out);
  if (generator->device().type() == out.device().type())
    out.normal_(0.0, 1.0, *generator);
  else
    out.copy_(normal_like(out, *generator));  // drawn on the generator's device, moved
}

BrownianIncrement RunContext::wiener_and_area(const at::Tensor& x, double s, double t) const {
  const double h = std::abs(s - t);
  if (request_.brownian) {
    // The path's (W(t) - W(s), Z(s, t)); its oriented Z(s, t) is int_t^s (W(s) - W(u)) du when
    // t < s and minus int_s^t (W(s) - W(u)) du when t > s.
    BrownianIncrement inc = request_.brownian->increment_and_area(s, t, x);
    inc.dW.neg_();
    if (t > s) inc.dZ.neg_();
    return inc;
  }
  at::Tensor dw = wiener(x, s, t);
  at::Tensor dz = (request_.noise ? request_.noise->next(x) : normal_like(x, *generator))
                      .mul_(std::sqrt(h * h * h / 12.0))
                      .add_(dw, 0.5 * h);
  return {std::move(dw), std::move(dz)};
}

at::Tensor& RunContext::buffer(std::string_view name, int index, const at::Tensor& like) const {
  // A handful of buffers per run: a linear search costs nanoseconds. The vector never
  // reallocates, so references stay valid.
  if (buffers_.capacity() < static_cast<size_t>(kMaxBuffers)) buffers_.reserve(kMaxBuffers);
  NamedBuffer* found = nullptr;
  for (auto& b : buffers_)
    if (b.index == index && b.name == name) {
      found = &b;
      break;
    }
  if (!found) {
    if (buffers_.size() >= static_cast<size_t>(kMaxBuffers))
      throw std::logic_error("RunContext::buffer: more than " + std::to_string(kMaxBuffers) +
                             " buffers in one run");
    buffers_.push_back({name, index, at::Tensor()});
    found = &buffers_.back();
  }
  at::Tensor& b = found->tensor;
  if (!b.defined() || b.sizes() != like.sizes() || b.scalar_type() != like.scalar_type() ||
      b.device() != like.device())
    b = at::empty_like(like, at::MemoryFormat::Contiguous);
  return b;
}

void RunContext::standard_normal_into(at::Tensor& out, double s, double t) const {
  if (request_.noise && !request_.brownian) return request_.noise->next_into(out);
  if (request_.brownian || generator->device().type() != out.device().type()) {
    out.copy_(standard_normal(out, s, t));
    return;
  }
  out.normal_(0.0, 1.0, *generator);
}

int Sampler::steps_for_nfe(int nfe) const {
  const int per = nfe_per_step();
  if (per < 1 || nfe < per)
    throw std::invalid_argument("sampler " + std::string(name()) + ": an NFE budget of " +
                                std::to_string(nfe) + " buys no step (" + std::to_string(per) +
                                " NFE per step)");
  return nfe / per;
}

SampleResult Sampler::run(const SampleRequest& r, const StepObserver& observer) const {
  validate_request(*this, r);
  CountingModel counted(*r.model);
  const SchedulePtr kernel = r.sde->schedule();
  const Predictor predictor(counted, kernel.get());
  at::Generator gen_copy;
  at::Generator* gen = nullptr;
  if (r.generator) {
    gen_copy = *r.generator;  // shares the generator state: draws advance the caller's generator
    gen = &gen_copy;
  }
  int steps = 0;
  const StepObserver counting = [&](const StepInfo& info) {
    ++steps;
    if (observer) observer(info);
  };
  const RunContext ctx(r, predictor, counted, gen, counting, name());
  at::Tensor x = integrate(ctx, r.x_init);
  if (r.to_zero && !own_step_to_zero()) {
    // The Euler step to sigma = 0 in sigma, x + (0 - sigma~)(x~ - D)/sigma~, is D itself
    // (docs/theory.md section 4.17).
    const double s = r.times.back();
    at::Tensor& out = ctx.buffer("to_zero", x);
    detail::predict_into(predictor, Param::X0, x, s, out);
    ctx.step_done(steps, steps + 1, s, r.sde->domain().lo, x, out, true);
    x = out;
  }
  return {x, counted.count(), steps, ctx.attempts()};
}

at::Tensor FixedStepSampler::integrate(const RunContext& ctx, const at::Tensor& x_init) const {
  const int steps = ctx.steps();
  at::Tensor x = x_init;
  for (int i = 0; i < steps; ++i) {
    const StepContext sc{ctx, i, steps};
    at::Tensor& out = ctx.state(i, x);  // never x: x is x_init or the other state buffer
    step_into(sc, x, ctx.times[i], ctx.times[i + 1], out);
    ctx.step_done(i, steps, ctx.times[i], ctx.times[i + 1], x, out, i + 1 == steps);
    x = out;
  }
  return x;
}

}  // namespace sdekit
