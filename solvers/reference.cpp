// Reference PF-ODE solutions: Dormand-Prince 5(4) in float64 at (rtol, atol), checked against the
// same solve at ten times the tolerances (see reference.hpp).
#include "solvers/reference.hpp"

#include <cmath>
#include <stdexcept>

namespace sdekit {

ReferenceSolution reference_solve(ScoreModel& model, const SDE& sde, const at::Tensor& x_T,
                                  double t_from, double t_to, double rtol, double atol) {
  if (!x_T.defined() || !at::isFloatingType(x_T.scalar_type()))
    throw std::invalid_argument("reference_solve: x_T must be a floating-point tensor [n, ...]");
  SampleRequest req;
  req.model = &model;
  req.sde = &sde;
  req.times = {t_from, t_to};
  req.x_init = x_T.to(at::kDouble);
  req.finite_check = FiniteCheck::Final;
  SamplerOptions opt;
  opt.rtol = rtol;
  opt.atol = atol;
  opt.max_steps = 100000;
  ReferenceSolution out;
  AdaptiveSolution fine = adaptive_solve("dopri5", opt, req);
  opt.rtol = 10.0 * rtol;
  opt.atol = 10.0 * atol;
  AdaptiveSolution check = adaptive_solve("dopri5", opt, req);
  out.x = fine.x;
  out.error_estimate = (fine.x - check.x).abs().max().item<double>();
  out.stats = fine.stats;
  out.check_stats = check.stats;
  return out;
}

}  // namespace sdekit
