#pragma once
// Allocation-free linear algebra on sampler states: out = sum_k c_k t_k with in-place and out=
// kernels only. A plain `c * x` would allocate twice (a wrapped 0-dim scalar and the product);
// here scalars enter as `alpha` arguments of add_ or through one reused 0-dim CPU tensor.
#include <ATen/ATen.h>

#include <initializer_list>
#include <stdexcept>

namespace sdekit::detail {

/// A reused 0-dim CPU tensor of the given dtype holding v (valid until the next call on this
/// thread). The dtype matches the output's, so that the kernel needs no cast of it.
inline const at::Tensor& scalar(double v, at::ScalarType dtype) {
  thread_local at::Tensor f64 = at::zeros({}, at::kDouble), f32 = at::zeros({}, at::kFloat);
  thread_local at::Tensor other;
  at::Tensor& t = dtype == at::kDouble ? f64 : dtype == at::kFloat ? f32 : other;
  if (!t.defined() || t.scalar_type() != dtype) t = at::zeros({}, at::TensorOptions().dtype(dtype));
  t.fill_(v);
  return t;
}

/// out = c * x (out may be x).
inline void scale_into(at::Tensor& out, double c, const at::Tensor& x) {
  if (c == 1.0) {
    if (!out.is_same(x)) out.copy_(x);
  } else {
    at::mul_out(out, x, scalar(c, out.scalar_type()));
  }
}

struct Term {
  double c;
  const at::Tensor& t;
};

/// out = sum_k c_k t_k. `out` may be one of the terms (it is then scaled first); no other term
/// may alias it. Terms with c_k = 0 are skipped; a leading unit term and the next one share one
/// kernel (add_out). One kernel per remaining term.
inline void lincomb(at::Tensor& out, std::initializer_list<Term> terms) {
  const Term* first = nullptr;
  for (const Term& term : terms) {
    if (term.t.is_same(out)) {
      if (first) throw std::logic_error("lincomb: two terms alias the output");
      first = &term;
    }
  }
  if (!first) {
    for (const Term& term : terms) {
      if (term.c != 0.0) {
        first = &term;
        break;
      }
    }
    if (!first) {
      out.zero_();
      return;
    }
  }
  const Term* fused = nullptr;
  if (first->c == 1.0 && !first->t.is_same(out)) {
    for (const Term& term : terms) {
      if (&term != first && term.c != 0.0) {
        fused = &term;
        break;
      }
    }
  }
  if (fused)
    at::add_out(out, first->t, fused->t, fused->c);
  else
    scale_into(out, first->c, first->t);
  for (const Term& term : terms)
    if (&term != first && &term != fused && term.c != 0.0) out.add_(term.t, term.c);
}

/// The prediction in parameterization `to` at (x, t), one model call: the model's own output
/// when it already predicts `to` (kept alive in `hold`), else written into `buf`.
template <class Pred, class P>
const at::Tensor& predict_ref(const Pred& predictor, P to, const at::Tensor& x, double t,
                              at::Tensor& buf, at::Tensor& hold) {
  auto lin = predictor.linear(to, x, t);
  if (lin.cx == 0.0 && lin.cp == 1.0) {
    hold = std::move(lin.raw);
    return hold;
  }
  lincomb(buf, {{lin.cx, x}, {lin.cp, lin.raw}});
  return buf;
}

/// out = the model's prediction in parameterization `to` at (x, t): one model call, converted
/// with lincomb (no allocation besides the model's own output).
template <class Pred, class P>
void predict_into(const Pred& predictor, P to, const at::Tensor& x, double t, at::Tensor& out) {
  const auto lin = predictor.linear(to, x, t);
  lincomb(out, {{lin.cx, x}, {lin.cp, lin.raw}});
}

}  // namespace sdekit::detail
