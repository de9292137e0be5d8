#pragma once
// A learned consistency model: a Network F (the MLP or the U-Net) wrapped in the boundary
// parameterization of models/consistency.hpp, f(x, t) = c_x(t) x + c_F(t) F(x, t[, y]), so that
// f(x, t_end) = x exactly. Trained by consistency distillation (distill/distill.hpp); sampled by
// the "consistency" sampler. Class-conditional networks take labels like Network does.
#include <ATen/ATen.h>

#include <memory>
#include <optional>
#include <string>

#include "models/conditional.hpp"
#include "models/consistency.hpp"
#include "networks/network.hpp"

namespace sdekit {

class ConsistencyModel final : public ScoreModel, public ConditionalModel {
 public:
  /// `sde`: the registry name of the SDE whose PF-ODE the model follows (its kernel defines the
  /// boundary coefficients).
  ConsistencyModel(std::shared_ptr<Network> net, const std::string& sde, double t_end,
                   double sigma_data = 0.5);

  /// The output is a data-side sample (the trajectory's end), closest in meaning to x0.
  Param param() const override { return Param::X0; }
  std::string name() const override;
  int64_t num_classes() const override { return net_->num_classes(); }
  std::optional<double> consistency_end() const override { return boundary_.t_end(); }
  /// Unconditional use: a class-conditional network is given the null label.
  at::Tensor predict(const at::Tensor& x, const at::Tensor& t) override;
  at::Tensor predict(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) override;
  /// Times in float64 whatever x's dtype.
  at::Tensor predict_at(const at::Tensor& x, double t) override;
  /// With autograd (training): x [n, ...], t [n] (one time per row), y [n] or undefined.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y);

  Network& network() { return *net_; }
  const ConsistencyBoundary& boundary() const { return boundary_; }
  const std::string& sde() const { return sde_; }

  /// Saves the network (config and weights) with the boundary (sde, t_end, sigma_data).
  void save(const std::string& path) const;
  /// Loads a file written by save(). Throws std::invalid_argument naming the file when it cannot
  /// be read, is not a consistency model, or does not match its config.
  static std::shared_ptr<ConsistencyModel> load(const std::string& path,
                                                const std::string& device = "cpu");

 private:
  std::shared_ptr<Network> net_;
  std::string sde_;
  ConsistencyBoundary boundary_;
};

}  // namespace sdekit
