#include "models/likelihood_flow.hpp"

#include <ATen/core/grad_mode.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "models/param.hpp"

namespace sdekit {

AugmentedFlowModel::AugmentedFlowModel(ScoreModel& model, SchedulePtr kernel,
                                       std::vector<int64_t> event_shape, int64_t n,
                                       Divergence divergence, int64_t probes, bool gaussian,
                                       uint64_t seed, at::ScalarType dtype,
                                       const at::Tensor& probe_values)
    : model_(model),
      kernel_(std::move(kernel)),
      event_shape_(std::move(event_shape)),
      n_(n),
      divergence_(divergence) {
  if (!kernel_)
    throw std::invalid_argument(
        "the likelihood needs an SDE with a Gaussian kernel (an affine drift f(t) x)");
  dim_ = 1;
  for (int64_t v : event_shape_) dim_ *= v;
  if (divergence_ == Divergence::Exact) {
    columns_ = 1;
  } else {
    if (probes < 1)
      throw std::invalid_argument("--probes must be >= 1, got " + std::to_string(probes));
    columns_ = probes;
    if (probe_values.defined()) {
      if (probe_values.sizes() != at::IntArrayRef({probes, n, dim_}))
        throw std::invalid_argument("the likelihood's probes: expected [" + std::to_string(probes) +
                                    ", " + std::to_string(n) + ", " + std::to_string(dim_) +
                                    "], got " + std::to_string(probe_values.dim()) + "-d values");
      probes_ = probe_values.to(dtype).contiguous();
    } else {
      at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
      probes_ =
          gaussian
              ? at::randn({probes, n, dim_}, g, at::kDouble)
              : at::bernoulli(at::full({probes, n, dim_}, 0.5, at::kDouble), g).mul_(2.0).sub_(1.0);
      probes_ = probes_.to(dtype);
    }
  }
}

at::Tensor AugmentedFlowModel::augment(const at::Tensor& x) const {
  const at::Tensor flat = x.reshape({x.size(0), dim_});
  return at::cat({flat, at::zeros({x.size(0), columns_}, flat.options())}, 1);
}

at::Tensor AugmentedFlowModel::field(const at::Tensor& z, double t) {
  if (z.dim() != 2 || z.size(1) != dim_ + columns_ || z.size(0) != n_) {
    std::ostringstream os;
    os << "augmented flow: expected z [" << n_ << ", " << dim_ + columns_ << "], got " << z.sizes();
    throw std::invalid_argument(os.str());
  }
  const double alpha = kernel_->alpha(t), sigma = kernel_->sigma(t), f = kernel_->f(t),
               g2 = kernel_->g2(t);
  if (!(g2 > 0) || !std::isfinite(g2))
    throw std::invalid_argument("augmented flow: g2(t) must be positive and finite at t = " +
                                std::to_string(t));
  c10::InferenceMode no_inference(false);
  at::AutoGradMode grad_on(true);
  std::vector<int64_t> shape = {n_};
  shape.insert(shape.end(), event_shape_.begin(), event_shape_.end());
  const at::Tensor x = z.narrow(1, 0, dim_).detach().clone().requires_grad_(true);
  const at::Tensor pred = model_.predict_grad(x.view(shape), at::full({n_}, t, z.options()));
  const at::Tensor score =
      convert(pred, model_.param(), Param::Score, x.view(shape), alpha, sigma).reshape({n_, dim_});
  at::Tensor q = at::empty({n_, columns_}, z.options());
  if (divergence_ == Divergence::Exact) {
    at::Tensor tr = at::zeros({n_}, z.options());
    for (int64_t i = 0; i < dim_; ++i) {
      const auto g = torch::autograd::grad({score.select(1, i).sum()}, {x},
                                           /*grad_outputs=*/{}, /*retain_graph=*/true);
      tr += g[0].select(1, i);
      ++vjps_;
    }
    q.select(1, 0).copy_(tr);
  } else {
    const at::Tensor e = probes_.to(z.device(), z.scalar_type());
    for (int64_t p = 0; p < columns_; ++p) {
      const auto g = torch::autograd::grad({(score * e[p]).sum()}, {x}, {}, /*retain_graph=*/true);
      q.select(1, p).copy_((g[0] * e[p]).sum(1));
      ++vjps_;
    }
  }
  const at::Tensor l = z.narrow(1, dim_, columns_);
  // s_p = 2 (f l_p - d_p) / g2 with d_p = f D - g2 q_p / 2.
  const at::Tensor d = (q * (-0.5 * g2)).add_(f * double(dim_));
  const at::Tensor sl = (l * f - d) * (2.0 / g2);
  return at::cat({score.detach(), sl.detach()}, 1);
}

at::Tensor AugmentedFlowModel::predict_at(const at::Tensor& z, double t) {
  return field(z, t);
}

at::Tensor AugmentedFlowModel::predict(const at::Tensor& z, const at::Tensor& t) {
  const at::Tensor th = t.detach().reshape({-1}).to(at::kCPU, at::kDouble);
  const double t0 = th[0].item<double>();
  if (!at::all(th == t0).item<bool>())
    throw std::invalid_argument(
        "augmented flow: every row must be at the same time (the samplers' way)");
  return field(z, t0);
}

}  // namespace sdekit
