#pragma once
// An analytic Gaussian mixture p_0 = sum_k w_k N(mu_k, C_k) in R^D and its exact noised
// marginals: under x_t = alpha x0 + sigma eps, p_t = sum_k w_k N(alpha mu_k, alpha^2 C_k + sigma^2
// I). Each C_k = U_k diag(s_k) U_k^T is diagonalised once, so the noised covariance, its inverse
// and log-determinant cost O(D) per component at any (alpha, sigma). All evaluations are batched
// LibTorch ops in x's dtype and on x's device (CPU or CUDA, float32 or float64).
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "models/score_model.hpp"
#include "schedules/noise_schedule.hpp"

namespace sdekit {

class GaussianMixture {
 public:
  /// weights [K] (>= 0, summing to 1 within 1e-9), means [K, D], covariances [K, D, D] symmetric
  /// positive definite. Any floating dtype; stored in float64. Throws std::invalid_argument.
  GaussianMixture(at::Tensor weights, at::Tensor means, at::Tensor covariances,
                  std::string name = "gmm");

  /// Reads {"weights": [K], "means": [[D] x K], "covariances": [[[D x D]] x K]} or, instead of
  /// "covariances", "stds": [K] for isotropic components. Errors name the file and the field.
  static GaussianMixture from_json_file(const std::string& path);
  static GaussianMixture from_json_text(const std::string& text, const std::string& source);
  /// 8 equal modes on the circle of radius 2, std 0.1.
  static GaussianMixture ring2d();
  /// A fixed 64-dimensional mixture of 5 components with anisotropic covariances (seed 2024).
  static GaussianMixture gmm64();

  const std::string& name() const { return name_; }
  int64_t dim() const { return means_.size(1); }
  int64_t components() const { return weights_.size(0); }
  const at::Tensor& weights() const { return weights_; }
  const at::Tensor& means() const { return means_; }
  const at::Tensor& covariances() const { return covs_; }

  /// log p_t(x) for x [n, D] with scalar or per-row ([n]) alpha and sigma. Differentiable.
  at::Tensor log_prob(const at::Tensor& x, double alpha, double sigma) const;
  at::Tensor log_prob(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& sigma) const;
  /// grad_x log p_t(x), in closed form.
  at::Tensor score(const at::Tensor& x, double alpha, double sigma) const;
  at::Tensor score(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& sigma) const;
  /// Component log-joints l_k = log w_k + log N(x; alpha mu_k, alpha^2 C_k + sigma^2 I), [n, K],
  /// with per-row alpha and sigma [n]: the logits of the responsibilities p(k | x_t).
  /// Differentiable.
  at::Tensor log_joint(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& sigma) const;
  /// grad_x log p(k = y_i | x_i) = score_{y_i}(x_i) - score(x_i), [n, D], in closed form, where
  /// score_k is the score of component k's noised marginal alone; y [n] int64 in [0, K).
  at::Tensor responsibility_grad(const at::Tensor& x, const at::Tensor& alpha,
                                 const at::Tensor& sigma, const at::Tensor& y) const;
  /// cx x + cp score(x): the form every conversion of the score to another parameterization
  /// takes (models/param.hpp, conversion_coefficients). Small CPU batches take a direct path
  /// without tensor temporaries (the same formulas; agreeing with the tensor path to rounding).
  at::Tensor affine_score(const at::Tensor& x, double alpha, double sigma, double cx,
                          double cp) const;

  /// n exact samples of alpha x0 + sigma eps (alpha = 1, sigma = 0: of the data x0), drawn in
  /// float64 on the CPU from `gen` and returned with `options`.
  at::Tensor sample(int64_t n, double alpha, double sigma, at::Generator gen,
                    at::TensorOptions options = at::kDouble) const;
  /// For a single Gaussian (K = 1) N(mu, U diag(s) U^T): the exact probability-flow ODE map of
  /// points xT at time T to time t (either direction) under `kernel`. In the eigenbasis each
  /// coordinate of x - alpha mu scales by sqrt(v_t / v_T), v = alpha^2 s + sigma^2
  /// (docs/theory.md section 7). float64 on the CPU. Throws std::invalid_argument for K > 1.
  at::Tensor gaussian_flow(const at::Tensor& xT, const NoiseSchedule& kernel, double T,
                           double t) const;
  /// Exact mean [D] and covariance [D, D] of p_t, float64 on the CPU.
  at::Tensor mean(double alpha) const;
  at::Tensor covariance(double alpha, double sigma) const;

 private:
  struct Cache {
    at::TensorOptions options;
    at::Tensor log_w, U_cat, U_cat_t, mu_U, s;
    bool valid = false;
  };
  const Cache& params_like(const at::Tensor& x) const;
  // z = Sigma_t^{-1}(x - alpha mu) in the eigenbasis, log N per component; alpha/sigma broadcast
  // as [n,1,1] or 0-dim.
  void component_terms(const at::Tensor& x, const at::Tensor& a, const at::Tensor& s,
                       at::Tensor& log_joint, at::Tensor& z) const;
  void check_x(const at::Tensor& x) const;
  // The direct path for small batches on the CPU (no gradient): the same formulas as
  // component_terms and score_from_terms in plain loops over float64 copies of the parameters,
  // without tensor temporaries. Returns cx x + cp score(x) in x's dtype.
  bool direct(const at::Tensor& x) const;
  at::Tensor score_direct(const at::Tensor& x, double alpha, double sigma, double cx,
                          double cp) const;
  struct Host {
    std::vector<double> log_w, U_cat, mu_U, s;  // [K], [D, K*D], [K, D], [K, D]
  };

  std::string name_;
  at::Tensor weights_, means_, covs_;  // float64 CPU
  at::Tensor U_, evals_;               // eigenvectors [K,D,D], eigenvalues [K,D]
  mutable Cache cache_;
  Host host_;
};

/// The exact score model of a mixture under an SDE's Gaussian kernel. Predicts `output`
/// (default: the score) exactly, converting with the kernel's alpha and sigma.
class GaussianMixtureModel final : public ScoreModel {
 public:
  GaussianMixtureModel(GaussianMixture mixture, SchedulePtr kernel, Param output = Param::Score);
  Param param() const override { return output_; }
  std::string name() const override { return mixture_.name(); }
  /// Per-row times: copies t to the host once (one device sync) to evaluate the schedule.
  at::Tensor predict(const at::Tensor& x, const at::Tensor& t) override;
  at::Tensor predict_at(const at::Tensor& x, double t) override;
  /// The tensor path of predict (differentiable in x).
  at::Tensor predict_grad(const at::Tensor& x, const at::Tensor& t) override {
    return predict(x, t);
  }
  const GaussianMixture& mixture() const { return mixture_; }

 private:
  GaussianMixture mixture_;
  SchedulePtr kernel_;
  Param output_;
};

}  // namespace sdekit
