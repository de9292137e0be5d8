// The time-conditioned residual MLP for low-dimensional data.
#include <cmath>

#include "networks/detail/modules.hpp"

namespace sdekit::detail {

torch::Tensor sinusoidal_embedding(const torch::Tensor& t, int64_t dim, double scale) {
  const int64_t half = dim / 2;
  const auto freqs = torch::exp(
      -std::log(10000.0) *
      torch::arange(half, torch::TensorOptions().dtype(torch::kFloat).device(t.device())) /
      static_cast<double>(half));
  const auto args = (t.to(torch::kFloat) * scale).unsqueeze(1) * freqs.unsqueeze(0);
  return torch::cat({torch::sin(args), torch::cos(args)}, 1);
}

EmbeddingImpl::EmbeddingImpl(const NetConfig& c, int64_t out_dim)
    : time_dim(c.time_dim), time_scale(c.time_scale) {
  lin1 = register_module("lin1", torch::nn::Linear(c.time_dim, out_dim));
  lin2 = register_module("lin2", torch::nn::Linear(out_dim, out_dim));
  if (c.num_classes > 0)
    classes = register_module("classes", torch::nn::Embedding(c.num_classes + 1, out_dim));
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& t, const torch::Tensor& y) {
  auto e = lin2(torch::silu(lin1(sinusoidal_embedding(t, time_dim, time_scale))));
  if (classes && y.defined()) e = e + classes(y);
  return e;
}

namespace {

struct MLPImpl : ScoreNetImpl {
  explicit MLPImpl(const NetConfig& c) : dim(c.event_shape.at(0)) {
    const int64_t w = c.width;
    emb = register_module("emb", Embedding(c, w));
    in = register_module("input", torch::nn::Linear(dim, w));
    for (int64_t i = 0; i < c.depth; ++i) {
      a.push_back(register_module("a" + std::to_string(i), torch::nn::Linear(w, w)));
      b.push_back(register_module("b" + std::to_string(i), torch::nn::Linear(w, w)));
      e.push_back(register_module("e" + std::to_string(i), torch::nn::Linear(w, w)));
    }
    out = register_module("output", torch::nn::Linear(w, dim));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t,
                        const torch::Tensor& y) override {
    const auto temb = emb->forward(t, y);
    auto h = in(x.to(torch::kFloat));
    for (size_t i = 0; i < a.size(); ++i)
      h = h + b[i](torch::silu(a[i](torch::silu(h)) + e[i](torch::silu(temb))));
    return out(torch::silu(h));
  }
  int64_t dim;
  Embedding emb{nullptr};
  torch::nn::Linear in{nullptr}, out{nullptr};
  std::vector<torch::nn::Linear> a, b, e;
};

}  // namespace

std::shared_ptr<ScoreNetImpl> make_mlp(const NetConfig& c) {
  return std::make_shared<MLPImpl>(c);
}

}  // namespace sdekit::detail
