#include "models/param.hpp"

#include <stdexcept>
#include <utility>

namespace sdekit {

namespace {
struct ParamName {
  Param p;
  const char* name;
};
constexpr ParamName kNames[] = {
    {Param::Eps, "eps"},           {Param::X0, "x0"},    {Param::V, "v"}, {Param::Score, "score"},
    {Param::Denoiser, "denoiser"}, {Param::Flow, "flow"}};

bool is_data(Param p) {
  return p == Param::X0 || p == Param::Denoiser;
}

// (cx, cp) with to = cx x + cp pred. A is double, or at::Tensor for per-row alpha and sigma: the
// same algebra for both (docs/theory.md section 3, through eps = bx x + bp pred and to = ax x + ae
// eps).
template <class A>
std::pair<A, A> coefficients(Param from, Param to, const A& a, const A& s) {
  const A zero = a * 0.0, one = zero + 1.0;
  if (from == to || (is_data(from) && is_data(to))) return {zero, one};
  if (is_data(from) && to == Param::Score)
    return {-one / (s * s), a / (s * s)};  // (alpha x0 - x) / sigma^2
  if (from == Param::Score && is_data(to))
    return {one / a, s * s / a};  // (x + sigma^2 score) / alpha
  // The flow's direct paths, which stay finite as alpha -> 0 (u = eps - x0).
  if (from == Param::Flow && is_data(to))
    return {one / (a + s), -s / (a + s)};  // x0 = (x - sigma u) / (alpha + sigma)
  if (is_data(from) && to == Param::Flow)
    return {one / s, -(a + s) / s};  // u = (x - (alpha + sigma) x0) / sigma
  const A n2 = a * a + s * s;
  A bx = zero, bp = one;  // eps = bx x + bp pred
  switch (from) {
    case Param::Eps:
      break;
    case Param::X0:
    case Param::Denoiser:
      bx = one / s, bp = -a / s;
      break;
    case Param::V:
      bx = s / n2, bp = a / n2;
      break;
    case Param::Score:
      bx = zero, bp = -s;
      break;
    case Param::Flow:
      bx = one / (a + s), bp = a / (a + s);
      break;
  }
  A ax = zero, ae = one;  // to = ax x + ae eps
  switch (to) {
    case Param::Eps:
      break;
    case Param::X0:
    case Param::Denoiser:
      ax = one / a, ae = -s / a;
      break;
    case Param::V:
      ax = -s / a, ae = a + s * s / a;
      break;
    case Param::Score:
      ax = zero, ae = -one / s;
      break;
    case Param::Flow:
      ax = -one / a, ae = (a + s) / a;
      break;
  }
  return {ax + ae * bx, ae * bp};
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
  static const std::vector<Param> ps = {Param::Eps,   Param::X0,       Param::V,
                                        Param::Score, Param::Denoiser, Param::Flow};
  return ps;
}

LinearCoeffs conversion_coefficients(Param from, Param to, double alpha, double sigma) {
  const auto c = coefficients<double>(from, to, alpha, sigma);
  return {c.first, c.second};
}

at::Tensor convert(const at::Tensor& pred, Param from, Param to, const at::Tensor& x, double alpha,
                   double sigma) {
  const LinearCoeffs c = conversion_coefficients(from, to, alpha, sigma);
  if (c.cx == 0.0) return c.cp == 1.0 ? pred : pred * c.cp;
  return at::add(pred * c.cp, x, c.cx);
}

at::Tensor convert(const at::Tensor& pred, Param from, Param to, const at::Tensor& x,
                   const at::Tensor& alpha, const at::Tensor& sigma) {
  if (from == to || (is_data(from) && is_data(to))) return pred;
  const auto c = coefficients<at::Tensor>(from, to, alpha, sigma);
  return c.first * x + c.second * pred;
}

}  // namespace sdekit
