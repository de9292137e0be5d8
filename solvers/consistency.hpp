#pragma once
// The exact consistency function of a score model (docs/theory.md section 4): its probability-flow
// ODE solved accurately from (x, t) to t_end, the teacher's flow map. Ground truth for the
// "consistency" sampler, which evaluates any consistency function (models/consistency.hpp) in one
// or several steps.
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "models/score_model.hpp"
#include "schedules/sde.hpp"

namespace sdekit {

class ExactConsistency final : public ScoreModel {
 public:
  /// f(x, t) = the PF-ODE solution of `sde` with `model` from (x, t) to t_end by dopri5 at
  /// (rtol, atol) in float64 (returned in x's dtype). Throws std::invalid_argument for a null
  /// model or SDE, t_end outside the SDE's domain or bad tolerances.
  ExactConsistency(std::shared_ptr<ScoreModel> model, SDEPtr sde, double t_end, double rtol = 1e-8,
                   double atol = 1e-8);
  Param param() const override { return Param::X0; }
  std::string name() const override;
  std::optional<double> consistency_end() const override { return t_end_; }
  /// Rows with equal times are solved together; f(x, t_end) = x.
  at::Tensor predict(const at::Tensor& x, const at::Tensor& t) override;
  at::Tensor predict_at(const at::Tensor& x, double t) override;
  /// Model calls spent by the ODE solves so far (one consistency evaluation counts as one NFE
  /// for the sampler; this is what it cost the underlying score model).
  int64_t solver_nfe() const { return solver_nfe_; }

 private:
  std::shared_ptr<ScoreModel> model_;
  SDEPtr sde_;
  double t_end_, rtol_, atol_;
  int64_t solver_nfe_ = 0;
};

}  // namespace sdekit
