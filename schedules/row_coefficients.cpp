#include "schedules/row_coefficients.hpp"

namespace sdekit {

RowCoefficients row_coefficients(const NoiseSchedule& k, const at::Tensor& t) {
  const at::Tensor th = t.detach().reshape({-1}).to(at::kCPU, at::kDouble).contiguous();
  const int64_t n = th.numel();
  RowCoefficients c{at::empty({n}, at::kDouble), at::empty({n}, at::kDouble)};
  const double* tp = th.data_ptr<double>();
  double* ap = c.alpha.data_ptr<double>();
  double* sp = c.sigma.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) {
    ap[i] = k.alpha(tp[i]);
    sp[i] = k.sigma(tp[i]);
  }
  return c;
}

}  // namespace sdekit
