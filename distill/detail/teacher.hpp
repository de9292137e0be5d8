#pragma once
// The teacher of a distillation, queried at one time per row without gradients. Private to
// distill/ (includes <torch/torch.h>).
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "models/score_model.hpp"
#include "networks/network.hpp"
#include "schedules/noise_schedule.hpp"

namespace sdekit::detail {

class Teacher {
 public:
  /// "net:FILE.pt", "fmnist", or an exact mixture spec. Throws std::invalid_argument naming
  /// the spec.
  Teacher(const std::string& spec, SchedulePtr kernel, const std::string& device);
  /// A network teacher (e.g. the previous round's student).
  Teacher(std::shared_ptr<Network> net, SchedulePtr kernel);

  /// Null for an analytic (mixture) teacher.
  const std::shared_ptr<Network>& network() const { return net_; }
  int64_t num_classes() const { return net_ ? net_->num_classes() : 0; }
  std::vector<int64_t> event_shape() const { return event_shape_; }
  std::string name() const;

  /// The prediction converted to `to` at x [B, ...] (float32, on the device), per-row times t
  /// [B] (float64, host) with per-row alpha and sigma shaped like rows_like (x's device), labels
  /// y [B] or undefined. No gradient.
  at::Tensor predict(Param to, const at::Tensor& x, const at::Tensor& t, const at::Tensor& y,
                     const at::Tensor& alpha, const at::Tensor& sigma) const;

 private:
  std::shared_ptr<Network> net_;
  std::shared_ptr<ScoreModel> analytic_;
  SchedulePtr kernel_;
  std::vector<int64_t> event_shape_;
};

/// The network file a teacher spec names ("net:FILE.pt" or "fmnist"), or "" for other specs.
std::string teacher_network_file(const std::string& spec);

}  // namespace sdekit::detail
