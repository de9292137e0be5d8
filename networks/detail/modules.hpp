#pragma once
// The torch::nn modules behind Network (private to networks/: includes <torch/torch.h>).
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "networks/network.hpp"

namespace sdekit::detail {

/// Sinusoidal features of s = t * scale: [sin(s w_k), cos(s w_k)], w_k = 10000^(-k / (dim/2)).
torch::Tensor sinusoidal_embedding(const torch::Tensor& t, int64_t dim, double scale);

/// Every score network: forward(x, t, y) with y undefined for unconditional networks.
struct ScoreNetImpl : torch::nn::Module {
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t,
                                const torch::Tensor& y) = 0;
};

/// Time (and class) embedding: sinusoidal -> Linear -> SiLU -> Linear, plus a learnt class
/// embedding (K + 1 rows, the last one the null class).
struct EmbeddingImpl : torch::nn::Module {
  EmbeddingImpl(const NetConfig& c, int64_t out_dim);
  torch::Tensor forward(const torch::Tensor& t, const torch::Tensor& y);
  int64_t time_dim;
  double time_scale;
  torch::nn::Linear lin1{nullptr}, lin2{nullptr};
  torch::nn::Embedding classes{nullptr};
};
TORCH_MODULE(Embedding);

std::shared_ptr<ScoreNetImpl> make_mlp(const NetConfig& c);
std::shared_ptr<ScoreNetImpl> make_unet(const NetConfig& c);

}  // namespace sdekit::detail

namespace sdekit {
struct Network::Impl {
  std::shared_ptr<detail::ScoreNetImpl> net;
};
}  // namespace sdekit
