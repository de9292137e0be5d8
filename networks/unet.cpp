// The small U-Net for images: residual blocks (GroupNorm, SiLU, 3x3 convolutions, the time and
// class embedding added after the first convolution), stride-2 convolutions down, nearest
// upsampling and a convolution up, skip connections concatenated per block (as in DDPM's U-Net,
// without attention).
#include "networks/detail/modules.hpp"

namespace sdekit::detail {

namespace {

namespace nn = torch::nn;

nn::Conv2d conv3(int64_t in, int64_t out, int64_t stride = 1) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1));
}

struct ResBlockImpl : nn::Module {
  ResBlockImpl(int64_t in, int64_t out, int64_t temb, int64_t groups) {
    norm1 = register_module("norm1", nn::GroupNorm(nn::GroupNormOptions(groups, in)));
    conv1 = register_module("conv1", conv3(in, out));
    proj = register_module("proj", nn::Linear(temb, out));
    norm2 = register_module("norm2", nn::GroupNorm(nn::GroupNormOptions(groups, out)));
    conv2 = register_module("conv2", conv3(out, out));
    if (in != out) skip = register_module("skip", nn::Conv2d(nn::Conv2dOptions(in, out, 1)));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb) {
    auto h = conv1(torch::silu(norm1(x)));
    h = h + proj(torch::silu(temb)).unsqueeze(-1).unsqueeze(-1);
    h = conv2(torch::silu(norm2(h)));
    return h + (skip ? skip(x) : x);
  }
  nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  nn::Conv2d conv1{nullptr}, conv2{nullptr}, skip{nullptr};
  nn::Linear proj{nullptr};
};
TORCH_MODULE(ResBlock);

struct UNetImpl : ScoreNetImpl {
  explicit UNetImpl(const NetConfig& c) {
    const int64_t C = c.event_shape.at(0), w = c.width, temb = 4 * w, g = c.groups;
    emb = register_module("emb", Embedding(c, temb));
    conv_in = register_module("conv_in", conv3(C, w));
    std::vector<int64_t> skips = {w};
    int64_t ch = w;
    const auto L = static_cast<int64_t>(c.channel_mult.size());
    for (int64_t i = 0; i < L; ++i) {
      const int64_t out = w * c.channel_mult[static_cast<size_t>(i)];
      for (int64_t k = 0; k < c.depth; ++k) {
        down.push_back(register_module("down" + std::to_string(i) + "_" + std::to_string(k),
                                       ResBlock(ch, out, temb, g)));
        ch = out;
        skips.push_back(ch);
      }
      if (i + 1 < L) {
        downsample.push_back(register_module("downsample" + std::to_string(i), conv3(ch, ch, 2)));
        skips.push_back(ch);
      }
    }
    mid1 = register_module("mid1", ResBlock(ch, ch, temb, g));
    mid2 = register_module("mid2", ResBlock(ch, ch, temb, g));
    for (int64_t i = L - 1; i >= 0; --i) {
      const int64_t out = w * c.channel_mult[static_cast<size_t>(i)];
      for (int64_t k = 0; k <= c.depth; ++k) {
        const int64_t s = skips.back();
        skips.pop_back();
        up.push_back(register_module("up" + std::to_string(i) + "_" + std::to_string(k),
                                     ResBlock(ch + s, out, temb, g)));
        ch = out;
      }
      if (i > 0) upsample.push_back(register_module("upsample" + std::to_string(i), conv3(ch, ch)));
    }
    norm_out = register_module("norm_out", nn::GroupNorm(nn::GroupNormOptions(g, ch)));
    conv_out = register_module("conv_out", conv3(ch, C));
    torch::NoGradGuard no_grad;
    conv_out->weight.zero_();
    conv_out->bias.zero_();
    levels = L;
    blocks = c.depth;
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t,
                        const torch::Tensor& y) override {
    const auto temb = emb->forward(t, y);
    auto h = conv_in(x.to(torch::kFloat));
    std::vector<torch::Tensor> hs = {h};
    size_t d = 0;
    for (int64_t i = 0; i < levels; ++i) {
      for (int64_t k = 0; k < blocks; ++k) {
        h = down[d++]->forward(h, temb);
        hs.push_back(h);
      }
      if (i + 1 < levels) {
        h = downsample[static_cast<size_t>(i)](h);
        hs.push_back(h);
      }
    }
    h = mid2->forward(mid1->forward(h, temb), temb);
    size_t u = 0, us = 0;
    for (int64_t i = levels - 1; i >= 0; --i) {
      for (int64_t k = 0; k <= blocks; ++k) {
        h = up[u++]->forward(torch::cat({h, hs.back()}, 1), temb);
        hs.pop_back();
      }
      if (i > 0) {
        const auto& skip = hs.back();
        h = torch::nn::functional::interpolate(
            h, torch::nn::functional::InterpolateFuncOptions()
                   .size(std::vector<int64_t>{skip.size(2), skip.size(3)})
                   .mode(torch::kNearest));
        h = upsample[us++](h);
      }
    }
    return conv_out(torch::silu(norm_out(h)));
  }
  int64_t levels = 0, blocks = 0;
  Embedding emb{nullptr};
  nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  std::vector<ResBlock> down, up;
  std::vector<nn::Conv2d> downsample, upsample;
  ResBlock mid1{nullptr}, mid2{nullptr};
  nn::GroupNorm norm_out{nullptr};
};

}  // namespace

std::shared_ptr<ScoreNetImpl> make_unet(const NetConfig& c) {
  return std::make_shared<UNetImpl>(c);
}

}  // namespace sdekit::detail
