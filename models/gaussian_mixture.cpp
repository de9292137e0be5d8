#include "models/gaussian_mixture.hpp"

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include <random>
#include <sstream>
#include <stdexcept>
#include "models/mixture_kernel.hpp"
#include "models/resources.hpp"
#include "schedules/row_coefficients.hpp"

namespace sdekit {

namespace {
constexpr double kLog2Pi = 1.8378770664093454836;

std::string shape_str(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}
}  // namespace

GaussianMixture::GaussianMixture(at::Tensor weights, at::Tensor means, at::Tensor covariances,
                                 std::string name)
    : name_(std::move(name)) {
  const std::string who = name_;
  auto host = [](const at::Tensor& t) { return t.detach().to(at::kCPU, at::kDouble).contiguous(); };
  if (!weights.defined() || weights.dim() != 1 || weights.size(0) < 1)
    throw std::invalid_argument(who + ": field 'weights': expected shape [K] with K >= 1, got " +
                                (weights.defined() ? shape_str(weights) : "undefined"));
  const int64_t K = weights.size(0);
  if (!means.defined() || means.dim() != 2 || means.size(0) != K || means.size(1) < 1)
    throw std::invalid_argument(who + ": field 'means': expected shape [" + std::to_string(K) +
                                ", D], got " + (means.defined() ? shape_str(means) : "undefined"));
  const int64_t D = means.size(1);
  if (!covariances.defined() || covariances.dim() != 3 || covariances.size(0) != K ||
      covariances.size(1) != D || covariances.size(2) != D)
    throw std::invalid_argument(who + ": field 'covariances': expected shape [" +
                                std::to_string(K) + ", " + std::to_string(D) + ", " +
                                std::to_string(D) + "], got " +
                                (covariances.defined() ? shape_str(covariances) : "undefined"));
  weights_ = host(weights);
  means_ = host(means);
  covs_ = host(covariances);
  if (!at::isfinite(weights_).all().item<bool>() || (weights_ < 0).any().item<bool>())
    throw std::invalid_argument(who + ": field 'weights': must be finite and >= 0");
  const double wsum = weights_.sum().item<double>();
  if (std::abs(wsum - 1.0) > 1e-9) {
    std::ostringstream os;
    os.precision(17);
    os << who << ": field 'weights': must sum to 1 (within 1e-9), got sum " << wsum;
    throw std::invalid_argument(os.str());
  }
  // Squares and products of these values must stay finite in double precision.
  constexpr double kMaxMagnitude = 1e100;
  if (!at::isfinite(means_).all().item<bool>())
    throw std::invalid_argument(who + ": field 'means': must be finite");
  if (!(means_.abs().max().item<double>() <= kMaxMagnitude))
    throw std::invalid_argument(who + ": field 'means': entries must lie within +-1e100");
  if (!at::isfinite(covs_).all().item<bool>())
    throw std::invalid_argument(who + ": field 'covariances': must be finite");
  if (!(covs_.abs().max().item<double>() <= kMaxMagnitude))
    throw std::invalid_argument(who + ": field 'covariances': entries must lie within +-1e100");
  for (int64_t k = 0; k < K; ++k) {
    const at::Tensor C = covs_[k];
    const double scale = std::max(1.0, C.abs().max().item<double>());
    const double asym = (C - C.transpose(0, 1)).abs().max().item<double>();
    if (asym > 1e-12 * scale) {
      std::ostringstream os;
      os << who << ": field 'covariances[" << k
         << "]': must be symmetric, got max |C - C^T| = " << asym;
      throw std::invalid_argument(os.str());
    }
  }
  covs_ = 0.5 * (covs_ + covs_.transpose(1, 2));
  auto eig = at::linalg_eigh(covs_);
  evals_ = std::get<0>(eig).contiguous();
  U_ = std::get<1>(eig).contiguous();
  for (int64_t k = 0; k < K; ++k) {
    const double lo = evals_[k].min().item<double>();
    if (!(lo > 0.0)) {
      std::ostringstream os;
      os << who << ": field 'covariances[" << k
         << "]': must be positive definite, got smallest eigenvalue " << lo;
      throw std::invalid_argument(os.str());
    }
  }
  // Host copies for the direct small-batch path (layouts as in params_like).
  auto flat = [](const at::Tensor& t) {
    const at::Tensor c = t.contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  };
  host_.log_w = flat(weights_.log());
  host_.U_cat = flat(U_.permute({1, 0, 2}).reshape({D, K * D}));
  host_.mu_U = flat(at::einsum("kd,kde->ke", {means_, U_}));
  host_.s = flat(evals_);
}

// ---------------------------------------------------------------------------------------------
// JSON input

namespace {
using nlohmann::json;

[[noreturn]] void json_error(const std::string& source, const std::string& field,
                             const std::string& msg) {
  throw std::invalid_argument(source + ": field '" + field + "': " + msg);
}

std::string kind_of(const json& j) {
  if (j.is_array()) return "an array of " + std::to_string(j.size());
  if (j.is_number()) return "a number";
  if (j.is_string()) return "a string";
  if (j.is_object()) return "an object";
  if (j.is_boolean()) return "a boolean";
  return "null";
}

std::vector<double> numbers(const json& j, const std::string& source, const std::string& field,
                            int64_t expected_len) {
  if (!j.is_array()) json_error(source, field, "expected an array of numbers, got " + kind_of(j));
  if (expected_len >= 0 && static_cast<int64_t>(j.size()) != expected_len)
    json_error(
        source, field,
        "expected " + std::to_string(expected_len) + " numbers, got " + std::to_string(j.size()));
  std::vector<double> v;
  v.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_number())
      json_error(source, field + "[" + std::to_string(i) + "]",
                 "expected a number, got " + kind_of(j[i]));
    const double x = j[i].get<double>();
    if (!std::isfinite(x)) json_error(source, field + "[" + std::to_string(i) + "]", "not finite");
    v.push_back(x);
  }
  return v;
}

at::Tensor to_tensor(const std::vector<double>& v, at::IntArrayRef shape) {
  return at::tensor(v, at::kDouble).reshape(shape).clone();
}
}  // namespace

GaussianMixture GaussianMixture::from_json_text(const std::string& text,
                                                const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse errors, and number overflow (out_of_range)
    throw std::invalid_argument(source + ": malformed JSON: " + e.what());
  }
  if (!j.is_object())
    throw std::invalid_argument(source + ": expected a JSON object, got " + kind_of(j));
  for (const auto& item : j.items()) {
    const std::string& k = item.key();
    if (k != "weights" && k != "means" && k != "covariances" && k != "stds")
      json_error(source, k, "unknown field; valid: weights, means, covariances, stds");
  }
  if (!j.contains("weights")) json_error(source, "weights", "missing");
  if (!j.contains("means")) json_error(source, "means", "missing");
  const bool has_cov = j.contains("covariances"), has_std = j.contains("stds");
  if (has_cov == has_std)
    json_error(source, "covariances",
               has_cov ? "give either 'covariances' or 'stds', not both"
                       : "missing (or give 'stds' for isotropic components)");
  const std::vector<double> w = numbers(j["weights"], source, "weights", -1);
  const int64_t K = static_cast<int64_t>(w.size());
  if (K < 1) json_error(source, "weights", "expected at least one component");
  for (int64_t k = 0; k < K; ++k)
    if (w[k] < 0) json_error(source, "weights[" + std::to_string(k) + "]", "must be >= 0");
  double wsum = 0;
  for (double x : w) wsum += x;
  if (std::abs(wsum - 1.0) > 1e-9) {
    std::ostringstream os;
    os.precision(17);
    os << "must sum to 1 (within 1e-9), got sum " << wsum;
    json_error(source, "weights", os.str());
  }
  const json& jm = j["means"];
  if (!jm.is_array() || static_cast<int64_t>(jm.size()) != K)
    json_error(source, "means",
               "expected an array of " + std::to_string(K) +
                   " mean vectors (one per weight), got " + kind_of(jm));
  std::vector<double> mu;
  int64_t D = -1;
  for (int64_t k = 0; k < K; ++k) {
    const std::string f = "means[" + std::to_string(k) + "]";
    auto v = numbers(jm[k], source, f, D);
    if (D < 0) D = static_cast<int64_t>(v.size());
    if (D < 1) json_error(source, f, "expected at least one coordinate");
    mu.insert(mu.end(), v.begin(), v.end());
  }
  std::vector<double> cov;
  cov.reserve(static_cast<size_t>(K * D * D));
  if (has_cov) {
    const json& jc = j["covariances"];
    if (!jc.is_array() || static_cast<int64_t>(jc.size()) != K)
      json_error(source, "covariances",
                 "expected an array of " + std::to_string(K) + " matrices, got " + kind_of(jc));
    for (int64_t k = 0; k < K; ++k) {
      const std::string f = "covariances[" + std::to_string(k) + "]";
      if (!jc[k].is_array() || static_cast<int64_t>(jc[k].size()) != D)
        json_error(source, f,
                   "expected a " + std::to_string(D) + "x" + std::to_string(D) + " matrix, got " +
                       kind_of(jc[k]));
      for (int64_t r = 0; r < D; ++r) {
        auto row = numbers(jc[k][r], source, f + "[" + std::to_string(r) + "]", D);
        cov.insert(cov.end(), row.begin(), row.end());
      }
    }
  } else {
    const std::vector<double> sd = numbers(j["stds"], source, "stds", K);
    for (int64_t k = 0; k < K; ++k) {
      if (!(sd[k] > 0)) json_error(source, "stds[" + std::to_string(k) + "]", "must be > 0");
      for (int64_t r = 0; r < D; ++r)
        for (int64_t c = 0; c < D; ++c) cov.push_back(r == c ? sd[k] * sd[k] : 0.0);
    }
  }
  // The constructor checks symmetry and definiteness, naming the source and the field.
  return GaussianMixture(to_tensor(w, {K}), to_tensor(mu, {K, D}), to_tensor(cov, {K, D, D}),
                         source);
}

GaussianMixture GaussianMixture::from_json_file(const std::string& path) {
  return from_json_text(read_text_file(path, "mixture file"), path);
}

// ---------------------------------------------------------------------------------------------
// Built-ins

GaussianMixture GaussianMixture::ring2d() {
  const int K = 8;
  at::Tensor w = at::full({K}, 1.0 / K, at::kDouble);
  at::Tensor mu = at::empty({K, 2}, at::kDouble);
  for (int k = 0; k < K; ++k) {
    const double a = 2.0 * M_PI * k / K;
    mu[k][0] = 2.0 * std::cos(a);
    mu[k][1] = 2.0 * std::sin(a);
  }
  at::Tensor cov = (0.01 * at::eye(2, at::kDouble)).expand({K, 2, 2}).clone();
  return GaussianMixture(w, mu, cov, "ring2d");
}

namespace {
// Portable normal draws (the bits of std::normal_distribution differ between libraries):
// mt19937_64 is fully specified; Box-Muller on 53-bit uniforms.
struct PortableNormal {
  std::mt19937_64 eng;
  explicit PortableNormal(uint64_t seed) : eng(seed) {}
  double uniform() { return (static_cast<double>(eng() >> 11) + 0.5) * 0x1.0p-53; }
  double operator()() {
    const double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }
};
}  // namespace

GaussianMixture GaussianMixture::gmm64() {
  const int64_t K = 5, D = 64;
  PortableNormal rng(2024);
  std::vector<double> w(K), mu(K * D), cov(K * D * D);
  double wsum = 0;
  for (auto& x : w) wsum += (x = 1.0 + rng.uniform());
  for (auto& x : w) x /= wsum;
  for (auto& x : mu) x = rng();
  for (int64_t k = 0; k < K; ++k) {
    at::Tensor G = at::empty({D, D}, at::kDouble);
    auto* g = G.data_ptr<double>();
    for (int64_t i = 0; i < D * D; ++i) g[i] = rng();
    at::Tensor Q = std::get<0>(at::linalg_qr(G));
    at::Tensor s = at::empty({D}, at::kDouble);
    for (int64_t i = 0; i < D; ++i)  // variances log-uniform in [0.1^2, 0.6^2]
      s[i] = std::exp(std::log(0.01) + rng.uniform() * (std::log(0.36) - std::log(0.01)));
    at::Tensor C = at::matmul(Q * s.unsqueeze(0), Q.transpose(0, 1));
    C = (0.5 * (C + C.transpose(0, 1))).contiguous();
    std::copy(C.data_ptr<double>(), C.data_ptr<double>() + D * D, cov.begin() + k * D * D);
  }
  return GaussianMixture(to_tensor(w, {K}), to_tensor(mu, {K, D}), to_tensor(cov, {K, D, D}),
                         "gmm64");
}

// ---------------------------------------------------------------------------------------------
// Evaluation

void GaussianMixture::check_x(const at::Tensor& x) const {
  if (!x.defined() || x.dim() != 2 || x.size(1) != dim())
    throw std::invalid_argument("mixture '" + name_ + "': x must have shape [n, " +
                                std::to_string(dim()) + "], got " +
                                (x.defined() ? shape_str(x) : "undefined"));
  if (!at::isFloatingType(x.scalar_type()))
    throw std::invalid_argument("mixture '" + name_ + "': x must be floating point");
}

const GaussianMixture::Cache& GaussianMixture::params_like(const at::Tensor& x) const {
  const at::TensorOptions o = x.options().requires_grad(false);
  if (!cache_.valid || cache_.options.dtype() != o.dtype() ||
      cache_.options.device() != o.device()) {
    const int64_t K = components(), D = dim();
    cache_.options = o;
    cache_.log_w = weights_.log().to(o);
    // U_k side by side, [D, K*D], so that one matmul projects x on every eigenbasis; and back.
    cache_.U_cat = U_.permute({1, 0, 2}).reshape({D, K * D}).contiguous().to(o);
    cache_.U_cat_t = cache_.U_cat.transpose(0, 1).contiguous();
    cache_.mu_U = at::einsum("kd,kde->ke", {means_, U_}).to(o);  // mu_k in its eigenbasis
    cache_.s = evals_.to(o);
    cache_.valid = true;
  }
  return cache_;
}

void GaussianMixture::component_terms(const at::Tensor& x, const at::Tensor& a, const at::Tensor& s,
                                      at::Tensor& log_joint, at::Tensor& z) const {
  const Cache& c = params_like(x);
  const int64_t n = x.size(0), K = components(), D = dim();
  // y_k = U_k^T (x - alpha mu_k): one [n, D] x [D, K*D] product for all components.
  const at::Tensor y = at::matmul(x, c.U_cat).view({n, K, D}).sub_(a * c.mu_U);  // [n,K,D]
  const at::Tensor var = (a * a) * c.s + s * s;                                  // [K,D] or [n,K,D]
  z = y / var;
  log_joint = (y * z)
                  .sum(-1)
                  .mul_(-0.5)
                  .sub_(var.log().sum(-1), 0.5)
                  .add_(c.log_w - 0.5 * static_cast<double>(D) * kLog2Pi);
}

at::Tensor GaussianMixture::log_prob(const at::Tensor& x, double alpha, double sigma) const {
  check_x(x);
  at::Tensor lj, z;
  component_terms(x, at::scalar_tensor(alpha, x.options()), at::scalar_tensor(sigma, x.options()),
                  lj, z);
  return at::logsumexp(lj, {1});
}

at::Tensor GaussianMixture::log_prob(const at::Tensor& x, const at::Tensor& alpha,
                                     const at::Tensor& sigma) const {
  check_x(x);
  at::Tensor lj, z;
  component_terms(x, alpha.to(x.options()).reshape({-1, 1, 1}),
                  sigma.to(x.options()).reshape({-1, 1, 1}), lj, z);
  return at::logsumexp(lj, {1});
}

bool GaussianMixture::direct(const at::Tensor& x) const {
  // The loops beat the tensor path at any batch in low dimension (where the tensor path's
  // reductions over K components and D coordinates are short and slow); in high dimension the
  // matrix products are BLAS's. The choice depends on the model alone, never on the batch, so
  // that a row's score is the same in any batch (docs/theory.md section 10.1).
  constexpr int64_t kLowDim = 16;
  return x.device().is_cpu() && !x.requires_grad() &&
         (x.scalar_type() == at::kDouble || x.scalar_type() == at::kFloat) && dim() <= kLowDim;
}

at::Tensor GaussianMixture::score_direct(const at::Tensor& x_in, double alpha, double sigma,
                                         double cx, double cp) const {
  const at::Tensor x = x_in.contiguous();
  const int64_t n = x.size(0), K = components(), D = dim(), KD = K * D;
  const Host& h = host_;
  // Per call: alpha mu_k and 1 / var_ke (var_ke = alpha^2 s_ke + sigma^2) in the eigenbases, and
  // the log-normaliser of each component.
  thread_local std::vector<double> amu, inv_var, norm;
  amu.resize(KD);
  inv_var.resize(KD);
  norm.resize(K);
  for (int64_t k = 0; k < K; ++k) {
    double logdet = 0.0;
    for (int64_t e = 0; e < D; ++e) {
      const double v = alpha * alpha * h.s[k * D + e] + sigma * sigma;
      inv_var[k * D + e] = 1.0 / v;
      amu[k * D + e] = alpha * h.mu_U[k * D + e];
      logdet += std::log(v);
    }
    norm[k] = h.log_w[k] - 0.5 * logdet - 0.5 * static_cast<double>(D) * kLog2Pi;
  }
  // The tables are read through pointers in the workers (a thread_local named inside the lambda
  // would be the worker's own).
  const detail::MixtureTables tables{h.U_cat.data(), amu.data(), inv_var.data(), norm.data(), K, D};
  at::Tensor out = at::empty_like(x);
  auto run = [&](const auto* xp, auto* op) {
    at::parallel_for(0, n, 512, [&](int64_t begin, int64_t end) {
      detail::mixture_rows(tables, xp + begin * D, op + begin * D, end - begin, cx, cp);
    });
  };
  if (x.scalar_type() == at::kDouble)
    run(x.data_ptr<double>(), out.data_ptr<double>());
  else
    run(x.data_ptr<float>(), out.data_ptr<float>());
  return out;
}

namespace {
// score = -sum_k r_k U_k z_k with responsibilities r = softmax(log_joint): one [n, K*D] x [K*D, D]
// product.
at::Tensor score_from_terms(const at::Tensor& lj, const at::Tensor& z, const at::Tensor& U_cat_t) {
  const at::Tensor r = at::softmax(lj, 1);  // [n,K]
  const int64_t n = z.size(0);
  return at::matmul((z * r.unsqueeze(-1)).view({n, -1}), U_cat_t).neg_();
}
}  // namespace

at::Tensor GaussianMixture::score(const at::Tensor& x, double alpha, double sigma) const {
  check_x(x);
  if (direct(x)) return score_direct(x, alpha, sigma, 0.0, 1.0);
  at::Tensor lj, z;
  component_terms(x, at::scalar_tensor(alpha, x.options()), at::scalar_tensor(sigma, x.options()),
                  lj, z);
  return score_from_terms(lj, z, params_like(x).U_cat_t);
}

at::Tensor GaussianMixture::affine_score(const at::Tensor& x, double alpha, double sigma, double cx,
                                         double cp) const {
  check_x(x);
  if (direct(x)) return score_direct(x, alpha, sigma, cx, cp);
  at::Tensor out = score(x, alpha, sigma);
  if (cp != 1.0) out.mul_(cp);
  if (cx != 0.0) out.add_(x, cx);
  return out;
}

at::Tensor GaussianMixture::score(const at::Tensor& x, const at::Tensor& alpha,
                                  const at::Tensor& sigma) const {
  check_x(x);
  at::Tensor lj, z;
  component_terms(x, alpha.to(x.options()).reshape({-1, 1, 1}),
                  sigma.to(x.options()).reshape({-1, 1, 1}), lj, z);
  return score_from_terms(lj, z, params_like(x).U_cat_t);
}

at::Tensor GaussianMixture::log_joint(const at::Tensor& x, const at::Tensor& alpha,
                                      const at::Tensor& sigma) const {
  check_x(x);
  at::Tensor lj, z;
  component_terms(x, alpha.to(x.options()).reshape({-1, 1, 1}),
                  sigma.to(x.options()).reshape({-1, 1, 1}), lj, z);
  return lj;
}

at::Tensor GaussianMixture::responsibility_grad(const at::Tensor& x, const at::Tensor& alpha,
                                                const at::Tensor& sigma,
                                                const at::Tensor& y) const {
  check_x(x);
  const int64_t n = x.size(0), D = dim();
  if (!y.defined() || y.dim() != 1 || y.size(0) != n)
    throw std::invalid_argument("mixture '" + name_ + "': labels must have shape [" +
                                std::to_string(n) + "], got " +
                                (y.defined() ? shape_str(y) : "undefined"));
  at::Tensor lj, z;
  component_terms(x, alpha.to(x.options()).reshape({-1, 1, 1}),
                  sigma.to(x.options()).reshape({-1, 1, 1}), lj, z);
  // score_k = -U_k z_k for every component, [n, K, D]; the mixture's score is their
  // responsibility-weighted sum (docs/theory.md section 7).
  const at::Tensor comp = at::einsum("kde,nke->nkd", {U_.to(x.options()), z}).neg_();
  const at::Tensor r = at::softmax(lj, 1).unsqueeze(-1);
  const at::Tensor idx = y.to(x.device(), at::kLong).view({n, 1, 1}).expand({n, 1, D});
  return comp.gather(1, idx).squeeze(1) - (comp * r).sum(1);
}

at::Tensor GaussianMixture::sample(int64_t n, double alpha, double sigma, at::Generator gen,
                                   at::TensorOptions options) const {
  if (n < 1)
    throw std::invalid_argument("mixture '" + name_ + "': sample count must be >= 1, got " +
                                std::to_string(n));
  const int64_t D = dim();
  const at::Tensor k = at::multinomial(weights_, n, /*replacement=*/true, gen);  // [n]
  const at::Tensor z = at::randn({n, D}, gen, at::kDouble);
  // x0 = mu_k + U_k diag(sqrt(s_k)) z, one matrix product per component over its rows.
  at::Tensor x0 = at::empty({n, D}, at::kDouble);
  for (int64_t c = 0; c < components(); ++c) {
    const at::Tensor rows = (k == c).nonzero().squeeze(1);
    if (rows.numel() == 0) continue;
    const at::Tensor L = U_[c] * evals_[c].sqrt().unsqueeze(0);
    x0.index_copy_(0, rows, at::matmul(z.index_select(0, rows), L.transpose(0, 1)) + means_[c]);
  }
  at::Tensor x = alpha * x0;
  if (sigma != 0.0) x = x + sigma * at::randn({n, D}, gen, at::kDouble);
  return x.to(options);
}

at::Tensor GaussianMixture::gaussian_flow(const at::Tensor& xT, const NoiseSchedule& k, double T,
                                          double t) const {
  if (components() != 1)
    throw std::invalid_argument("mixture '" + name_ +
                                "': the closed-form flow needs a single "
                                "Gaussian, got " +
                                std::to_string(components()) + " components");
  const at::Tensor m = means_[0], s = evals_[0], U = U_[0];
  const double aT = k.alpha(T), sT = k.sigma(T), a = k.alpha(t), sg = k.sigma(t);
  const at::Tensor vT = aT * aT * s + sT * sT, vt = a * a * s + sg * sg;
  const at::Tensor y = at::matmul(xT.to(at::kCPU, at::kDouble) - aT * m, U);
  return a * m + at::matmul(y * (vt / vT).sqrt(), U.transpose(0, 1));
}

at::Tensor GaussianMixture::mean(double alpha) const {
  return alpha * (weights_.unsqueeze(1) * means_).sum(0);
}

at::Tensor GaussianMixture::covariance(double alpha, double sigma) const {
  const at::Tensor m = (weights_.unsqueeze(1) * means_).sum(0);
  at::Tensor second =
      (weights_.view({-1, 1, 1}) * (covs_ + means_.unsqueeze(2) * means_.unsqueeze(1))).sum(0);
  at::Tensor c0 = second - at::outer(m, m);
  return alpha * alpha * c0 + sigma * sigma * at::eye(dim(), at::kDouble);
}

// ---------------------------------------------------------------------------------------------

GaussianMixtureModel::GaussianMixtureModel(GaussianMixture mixture, SchedulePtr kernel,
                                           Param output)
    : mixture_(std::move(mixture)), kernel_(std::move(kernel)), output_(output) {
  if (!kernel_)
    throw std::invalid_argument(
        "GaussianMixtureModel: the SDE has no Gaussian kernel (alpha, sigma)");
}

at::Tensor GaussianMixtureModel::predict(const at::Tensor& x, const at::Tensor& t) {
  if (!t.defined() || t.dim() != 1 || t.size(0) != x.size(0))
    throw std::invalid_argument("mixture model: t must have shape [" + std::to_string(x.size(0)) +
                                "], got " + (t.defined() ? shape_str(t) : "undefined"));
  const auto [a, s] = row_coefficients(*kernel_, t);
  at::Tensor score = mixture_.score(x, a, s);
  if (output_ == Param::Score) return score;
  const at::Tensor ad = a.to(x.options()).unsqueeze(1), sd = s.to(x.options()).unsqueeze(1);
  return convert(score, Param::Score, output_, x, ad, sd);
}

at::Tensor GaussianMixtureModel::predict_at(const at::Tensor& x, double t) {
  const double a = kernel_->alpha(t), s = kernel_->sigma(t);
  const LinearCoeffs c = conversion_coefficients(Param::Score, output_, a, s);
  return mixture_.affine_score(x, a, s, c.cx, c.cp);
}

}  // namespace sdekit
