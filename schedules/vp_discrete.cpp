#include "schedules/vp_discrete.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "schedules/validate.hpp"

namespace sdekit {

VPDiscrete::VPDiscrete(std::vector<double> betas, std::string name)
    : betas_(std::move(betas)), name_(std::move(name)) {
  if (betas_.empty()) throw std::invalid_argument(name_ + ": the beta table is empty");
  log_alpha_.assign(betas_.size() + 1, 0.0);
  for (size_t n = 0; n < betas_.size(); ++n) {
    const double b = betas_[n];
    require_param(name_, "betas[" + std::to_string(n) + "]", b, b > 0.0 && b < 1.0, "in (0, 1)");
    log_alpha_[n + 1] = log_alpha_[n] + 0.5 * std::log1p(-b);
  }
}

VPDiscrete VPDiscrete::linear(int N, double beta_1, double beta_N) {
  if (N < 1) throw std::invalid_argument("vp-discrete: N must be >= 1, got " + std::to_string(N));
  std::vector<double> b(static_cast<size_t>(N));
  for (int n = 0; n < N; ++n)
    b[static_cast<size_t>(n)] = N == 1 ? beta_1 : beta_1 + (beta_N - beta_1) * n / (N - 1.0);
  return VPDiscrete(std::move(b));
}

VPDiscrete VPDiscrete::scaled_linear(int N, double beta_1, double beta_N) {
  if (N < 1) throw std::invalid_argument("vp-sd: N must be >= 1, got " + std::to_string(N));
  std::vector<double> b(static_cast<size_t>(N));
  const double a = std::sqrt(beta_1), c = std::sqrt(beta_N);
  for (int n = 0; n < N; ++n) {
    const double r = N == 1 ? a : a + (c - a) * n / (N - 1.0);
    b[static_cast<size_t>(n)] = r * r;
  }
  return VPDiscrete(std::move(b), "vp-sd");
}

double VPDiscrete::alpha_bar(int n) const {
  return std::exp(2.0 * log_alpha_.at(static_cast<size_t>(n)));
}

namespace {
// Segment k = [t_k, t_{k+1}) holding t (the last segment holds t = 1), and its offset in steps.
inline int segment(double t, int N) {
  return std::min(N - 1, std::max(0, static_cast<int>(std::floor(t * N))));
}
}  // namespace

double VPDiscrete::log_alpha(double t) const {
  check_t(t, "log_alpha");
  const int N = steps();
  const int k = segment(t, N);
  const double u = t * N - k;
  return log_alpha_[k] + u * (log_alpha_[k + 1] - log_alpha_[k]);
}
double VPDiscrete::sigma(double t) const {
  return std::sqrt(-std::expm1(2.0 * log_alpha(t)));
}
double VPDiscrete::log_sigma(double t) const {
  return 0.5 * std::log(-std::expm1(2.0 * log_alpha(t)));
}
double VPDiscrete::f(double t) const {
  check_t(t, "f");
  const int N = steps();
  const int k = segment(t, N);
  return (log_alpha_[k + 1] - log_alpha_[k]) * N;
}

double VPDiscrete::t_of_lambda(double lam) const {
  const double la = -0.5 * softplus(-2.0 * lam);  // log alpha for VP
  const int N = steps();
  if (la >= 0.0) return 0.0;
  if (la <= log_alpha_.back()) return 1.0;
  // log_alpha_ is decreasing: first knot with log_alpha <= la.
  const auto it = std::lower_bound(log_alpha_.begin(), log_alpha_.end(), la,
                                   [](double knot, double v) { return knot > v; });
  const int k1 = static_cast<int>(it - log_alpha_.begin());
  const int k = k1 - 1;
  const double u = (la - log_alpha_[k]) / (log_alpha_[k1] - log_alpha_[k]);
  return (k + u) / N;
}

}  // namespace sdekit
