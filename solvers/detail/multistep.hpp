#pragma once
// The step walk shared by the multistep exponential integrators (DPM-Solver++ 2M/3M, UniPC,
// SDE-DPM-Solver++ 2M): the order each step may use (warm-up and lower-order final steps,
// docs/theory.md section 4.6) and the history of model predictions with their lambdas, kept in a
// ring of named run buffers so that steady-state steps allocate nothing.
#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <string_view>

#include "solvers/detail/exp_integrator.hpp"
#include "solvers/sampler.hpp"
#include "solvers/samplers.hpp"

namespace sdekit::detail {

/// Grids shorter than this lower the order of their final multistep steps.
constexpr int kLowerOrderFinalBelow = 10;

/// The order step i of `steps` uses: warm-up min(order, i + 1) (the history holds i earlier
/// predictions) and, under LowerOrderFinal::Below10 on grids of fewer than kLowerOrderFinalBelow
/// steps, min(order, steps - i). (A step ending where lambda is infinite is the order-1 limit
/// under every rule; that is all LowerOrderFinal::ToZero asks.)
inline int multistep_order(int order, int i, int steps,
                           LowerOrderFinal rule = LowerOrderFinal::Below10) {
  int o = std::min(order, i + 1);
  if (rule == LowerOrderFinal::Below10 && steps < kLowerOrderFinalBelow) o = std::min(o, steps - i);
  return o;
}

/// The newest `Keep` model predictions (or slopes) and the nodes they were taken at (lambda, or
/// sigma for the samplers in sigma), index 0 newest. A new entry is written into fresh(), which
/// never aliases a kept entry, then push()ed.
template <int Keep>
class PredictionHistory {
 public:
  PredictionHistory(const RunContext& ctx, std::string_view name) : ctx_(ctx), name_(name) {}

  /// A run buffer shaped like `like` for the next prediction (one of Keep + 1 in a ring).
  at::Tensor& fresh(const at::Tensor& like) const {
    return ctx_.buffer(name_, pushed_ % (Keep + 1), like);
  }
  /// Makes `m` (the tensor from fresh()) the newest entry, taken at `node`.
  void push(const at::Tensor& m, double node) {
    for (int j = Keep - 1; j > 0; --j) {
      m_[j] = m_[j - 1];
      node_[j] = node_[j - 1];
    }
    m_[0] = m;
    node_[0] = node;
    ++pushed_;
  }
  /// Entries held (at most Keep).
  int size() const { return std::min(pushed_, Keep); }
  const at::Tensor& operator[](int j) const { return m_[static_cast<size_t>(j)]; }
  double node(int j) const { return node_[static_cast<size_t>(j)]; }

 private:
  const RunContext& ctx_;
  std::string_view name_;
  std::array<at::Tensor, Keep> m_;
  std::array<double, Keep> node_{};
  int pushed_ = 0;
};

}  // namespace sdekit::detail
