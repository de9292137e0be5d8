#pragma once
// The probability-flow ODE augmented with its divergence (docs/theory.md section 8), as a score
// model of the augmented state z = [x, l_1, ..., l_P] ([n, D + P]), so that every deterministic
// sampler integrates it unchanged: encoding z from t_end to T gives x_T and
//   l_p(T) = integral over [t_end, T] of div v(x(t), t) dt,   v = f(t) x - g2(t) score(x, t) / 2,
// with div v = f(t) D - g2(t) div score / 2, and then log p_{t_end}(x) = log p_T(x_T) + l(T).
//
// The samplers integrate dz/dt = f(t) z - g2(t) s(z, t) / 2 (the PF-ODE of an affine SDE,
// elementwise). The x columns of s are the model's score; column p of the l part is
//   s_p = 2 (f l_p - d_p) / g2,   d_p = f D - g2 q_p / 2,
// which makes dl_p/dt = d_p, where q_p is the score's divergence: exact (P = 1: the trace of the
// Jacobian, one vector-Jacobian product per coordinate) or Hutchinson's estimate with probe p
// (q_p = e_p . J e_p, one vector-Jacobian product per probe; the probes are fixed for the whole
// trajectory, Rademacher or standard normal). The model must give gradients
// (ScoreModel::predict_grad).
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/score_model.hpp"
#include "schedules/noise_schedule.hpp"

namespace sdekit {

enum class Divergence { Exact, Hutchinson };

class AugmentedFlowModel final : public ScoreModel {
 public:
  /// `model` on samples of `event_shape`, under the affine SDE of `kernel`, for batches of n
  /// rows. Hutchinson: `probes` probes per row drawn from `seed` in `dtype` (Rademacher, or
  /// standard normal with gaussian = true), or the given `probe_values` [probes, n, D] (any
  /// floating dtype). Throws std::invalid_argument for probes < 1 or probe values of another
  /// shape.
  AugmentedFlowModel(ScoreModel& model, SchedulePtr kernel, std::vector<int64_t> event_shape,
                     int64_t n, Divergence divergence, int64_t probes, bool gaussian, uint64_t seed,
                     at::ScalarType dtype, const at::Tensor& probe_values = at::Tensor());
  Param param() const override { return Param::Score; }
  std::string name() const override { return model_.name() + " (augmented with its divergence)"; }
  at::Tensor predict(const at::Tensor& z, const at::Tensor& t) override;
  at::Tensor predict_at(const at::Tensor& z, double t) override;
  int calls_per_predict() const override { return model_.calls_per_predict(); }

  /// Columns P of the divergence part: 1 (exact) or the number of probes.
  int64_t columns() const { return columns_; }
  int64_t dim() const { return dim_; }
  /// [x flattened, zeros(P)], [n, D + P].
  at::Tensor augment(const at::Tensor& x) const;
  /// Vector-Jacobian products taken so far (D per exact divergence, P per Hutchinson one).
  int64_t vjps() const { return vjps_; }

 private:
  at::Tensor field(const at::Tensor& z, double t);
  ScoreModel& model_;
  SchedulePtr kernel_;
  std::vector<int64_t> event_shape_;
  int64_t n_, dim_, columns_;
  Divergence divergence_;
  at::Tensor probes_;  // [P, n, D] (Hutchinson)
  int64_t vjps_ = 0;
};

}  // namespace sdekit
