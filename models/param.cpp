#include "models/param.hpp"

#include <stdexcept>

namespace sdekit {

namespace {
struct ParamName {
  Param p;
  const char* name;
};
constexpr ParamName kNames[] = {{Param::Eps, "eps"},
                                {Param::X0, "x0"},
                                {Param::V, "v"},
                                {Param::Score, "score"},
                                {Param::Denoiser, "denoiser"}};

// A and S are double or at::Tensor: the same algebra for both.
template <class A>
at::Tensor to_eps(const at::Tensor& pred, Param from, const at::Tensor& x, const A& alpha,
                  const A& sigma) {
  switch (from) {
    case Param::Eps:
      return pred;
    case Param::X0:
    case Param::Denoiser:
      return (x - alpha * pred) / sigma;
    case Param::V:
      return (alpha * pred + sigma * x) / (alpha * alpha + sigma * sigma);
    case Param::Score:
      return -sigma * pred;
  }
  throw std::logic_error("to_eps: bad Param");
}

template <class A>
at::Tensor from_eps(const at::Tensor& eps, Param to, const at::Tensor& x, const A& alpha,
                    const A& sigma) {
  switch (to) {
    case Param::Eps:
      return eps;
    case Param::X0:
    case Param::Denoiser:
      return (x - sigma * eps) / alpha;
    case Param::V:
      return alpha * eps - sigma * ((x - sigma * eps) / alpha);
    case Param::Score:
      return -eps / sigma;
  }
  throw std::logic_error("from_eps: bad Param");
}

template <class A>
at::Tensor convert_impl(const at::Tensor& pred, Param from, Param to, const at::Tensor& x,
                        const A& alpha, const A& sigma) {
  if (from == to) return pred;
  const bool same_data =
      (from == Param::X0 || from == Param::Denoiser) && (to == Param::X0 || to == Param::Denoiser);
  if (same_data) return pred;
  // Direct x0 -> score avoids a divide-then-multiply: score = (alpha x0 - x) / sigma^2.
  if ((from == Param::X0 || from == Param::Denoiser) && to == Param::Score)
    return (alpha * pred - x) / (sigma * sigma);
  if (from == Param::Score && (to == Param::X0 || to == Param::Denoiser))
    return (x + (sigma * sigma) * pred) / alpha;
  return from_eps(to_eps(pred, from, x, alpha, sigma), to, x, alpha, sigma);
}
}  // namespace

Param parse_param(std::string_view name) {
  std::string valid;
  for (const auto& n : kNames) {
    if (name == n.name) return n.p;
    valid += (valid.empty() ? "" : ", ") + std::string(n.name);
  }
  throw std::invalid_argument("unknown parameterization '" + std::string(name) +
                              "'; valid: " + valid);
}

std::string param_name(Param p) {
  for (const auto& n : kNames)
    if (n.p == p) return n.name;
  return "?";
}

const std::vector<Param>& all_params() {
  static const std::vector<Param> ps = {Param::Eps, Param::X0, Param::V, Param::Score,
                                        Param::Denoiser};
  return ps;
}

LinearCoeffs conversion_coefficients(Param from, Param to, double alpha, double sigma) {
  const auto is_data = [](Param p) { return p == Param::X0 || p == Param::Denoiser; };
  if (from == to || (is_data(from) && is_data(to))) return {0.0, 1.0};
  const double a = alpha, s = sigma, n2 = alpha * alpha + sigma * sigma;
  if (is_data(from) && to == Param::Score)
    return {-1.0 / (s * s), a / (s * s)};  // (alpha x0 - x) / sigma^2
  if (from == Param::Score && is_data(to))
    return {1.0 / a, s * s / a};  // (x + sigma^2 score) / alpha
  // eps = bx x + bp pred
  double bx = 0, bp = 1;
  switch (from) {
    case Param::Eps:
      break;
    case Param::X0:
    case Param::Denoiser:
      bx = 1.0 / s, bp = -a / s;
      break;
    case Param::V:
      bx = s / n2, bp = a / n2;
      break;
    case Param::Score:
      bx = 0.0, bp = -s;
      break;
  }
  // to = ax x + ae eps
  double ax = 0, ae = 1;
  switch (to) {
    case Param::Eps:
      break;
    case Param::X0:
    case Param::Denoiser:
      ax = 1.0 / a, ae = -s / a;
      break;
    case Param::V:
      ax = -s / a, ae = a + s * s / a;
      break;
    case Param::Score:
      ax = 0.0, ae = -1.0 / s;
      break;
  }
  return {ax + ae * bx, ae * bp};
}

at::Tensor convert(const at::Tensor& pred, Param from, Param to, const at::Tensor& x, double alpha,
                   double sigma) {
  const LinearCoeffs c = conversion_coefficients(from, to, alpha, sigma);
  if (c.cx == 0.0) return c.cp == 1.0 ? pred : pred * c.cp;
  return at::add(pred * c.cp, x, c.cx);
}

at::Tensor convert(const at::Tensor& pred, Param from, Param to, const at::Tensor& x,
                   const at::Tensor& alpha, const at::Tensor& sigma) {
  return convert_impl<at::Tensor>(pred, from, to, x, alpha, sigma);
}

}  // namespace sdekit
