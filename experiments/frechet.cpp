#include "experiments/frechet.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace sdekit {

namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

std::string shape_str(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

at::Tensor to_cpu_double(const at::Tensor& t, const char* what) {
  if (!t.defined()) throw std::invalid_argument(std::string(what) + ": undefined tensor");
  if (!at::isFloatingType(t.scalar_type()))
    throw std::invalid_argument(std::string(what) + ": expected a floating dtype, got " +
                                std::string(c10::toString(t.scalar_type())));
  const at::Tensor d = t.to(at::kCPU, at::kDouble).contiguous();
  if (!at::isfinite(d).all().item<bool>())
    throw std::invalid_argument(std::string(what) + ": contains non-finite values");
  return d;
}

Eigen::VectorXd to_vector(const at::Tensor& t) {
  return Eigen::Map<const Eigen::VectorXd>(t.data_ptr<double>(), t.numel());
}

Eigen::MatrixXd to_matrix(const at::Tensor& t) {
  return Eigen::Map<const RowMatrix>(t.data_ptr<double>(), t.size(0), t.size(1));
}

// Principal square root of a symmetric positive semi-definite matrix, V diag(sqrt(max(l, 0))) V^T.
Eigen::MatrixXd psd_sqrt(const Eigen::MatrixXd& A) {
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(A);
  const Eigen::VectorXd s = es.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  return es.eigenvectors() * s.asDiagonal() * es.eigenvectors().transpose();
}

void check_pair(const at::Tensor& mu, const at::Tensor& C, const char* mu_name, const char* C_name,
                int64_t d) {
  if (mu.dim() != 1 || mu.size(0) != d)
    throw std::invalid_argument(std::string("frechet_distance: expected ") + mu_name +
                                " of shape [" + std::to_string(d) + "], got " + shape_str(mu));
  if (C.dim() != 2 || C.size(0) != C.size(1))
    throw std::invalid_argument(std::string("frechet_distance: expected ") + C_name +
                                " to be a square matrix, got shape " + shape_str(C));
  if (C.size(0) != d)
    throw std::invalid_argument(std::string("frechet_distance: expected ") + C_name +
                                " of shape [" + std::to_string(d) + ", " + std::to_string(d) +
                                "] to match mu1, got " + shape_str(C));
}

}  // namespace

int64_t GaussianStats::dim() const {
  return count > 0 ? mu.size(0) : 0;
}

GaussianStats& GaussianStats::add(const at::Tensor& features) {
  if (!features.defined() || features.dim() != 2)
    throw std::invalid_argument("GaussianStats::add: expected features of shape [n, d], got " +
                                (features.defined() ? shape_str(features) : "undefined"));
  if (count > 0 && features.size(1) != dim())
    throw std::invalid_argument("GaussianStats::add: expected feature dimension " +
                                std::to_string(dim()) + ", got " +
                                std::to_string(features.size(1)));
  if (features.size(0) == 0) return *this;
  const at::Tensor x = to_cpu_double(features, "GaussianStats::add");
  // The batch's own statistics, then Chan et al.'s pairwise merge.
  GaussianStats batch;
  batch.count = x.size(0);
  batch.mu = x.mean(0);
  const at::Tensor xc = x - batch.mu;
  batch.m2 = at::matmul(xc.transpose(0, 1), xc);
  return merge(batch);
}

GaussianStats& GaussianStats::merge(const GaussianStats& other) {
  if (other.count == 0) return *this;
  if (count == 0) {
    count = other.count;
    mu = other.mu.clone();
    m2 = other.m2.clone();
    return *this;
  }
  if (other.dim() != dim())
    throw std::invalid_argument("GaussianStats::merge: expected feature dimension " +
                                std::to_string(dim()) + ", got " + std::to_string(other.dim()));
  // Chan, Golub and LeVeque: delta = mu_B - mu_A, n = n_A + n_B,
  // mu = mu_A + delta n_B / n, M2 = M2_A + M2_B + delta delta^T n_A n_B / n.
  const double na = static_cast<double>(count), nb = static_cast<double>(other.count);
  const double n = na + nb;
  const at::Tensor delta = other.mu - mu;
  mu = mu + delta * (nb / n);
  m2 = m2 + other.m2 + at::outer(delta, delta) * (na * nb / n);
  count += other.count;
  return *this;
}

at::Tensor GaussianStats::mean() const {
  if (count == 0) throw std::invalid_argument("GaussianStats::mean: expected count >= 1, got 0");
  return mu.clone();
}

at::Tensor GaussianStats::covariance() const {
  if (count < 2)
    throw std::invalid_argument("GaussianStats::covariance: expected count >= 2, got " +
                                std::to_string(count));
  return m2 / static_cast<double>(count - 1);
}

double frechet_distance(const at::Tensor& mu1, const at::Tensor& C1, const at::Tensor& mu2,
                        const at::Tensor& C2) {
  if (!mu1.defined() || !C1.defined() || !mu2.defined() || !C2.defined())
    throw std::invalid_argument("frechet_distance: undefined tensor");
  if (mu1.dim() != 1)
    throw std::invalid_argument("frechet_distance: expected mu1 of shape [d], got " +
                                shape_str(mu1));
  const int64_t d = mu1.size(0);
  check_pair(mu1, C1, "mu1", "C1", d);
  check_pair(mu2, C2, "mu2", "C2", d);
  const Eigen::VectorXd m1 = to_vector(to_cpu_double(mu1, "frechet_distance: mu1"));
  const Eigen::VectorXd m2 = to_vector(to_cpu_double(mu2, "frechet_distance: mu2"));
  Eigen::MatrixXd A = to_matrix(to_cpu_double(C1, "frechet_distance: C1"));
  Eigen::MatrixXd B = to_matrix(to_cpu_double(C2, "frechet_distance: C2"));
  A = 0.5 * (A + A.transpose()).eval();
  B = 0.5 * (B + B.transpose()).eval();

  // docs/theory.md section 6: Tr((C1 C2)^{1/2}) = Tr((S1 C2 S1)^{1/2}) with S1 = C1^{1/2}.
  const Eigen::MatrixXd S1 = psd_sqrt(A);
  Eigen::MatrixXd M = S1 * B * S1;
  M = 0.5 * (M + M.transpose()).eval();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(M, Eigen::EigenvaluesOnly);
  const double tr_sqrt = es.eigenvalues().cwiseMax(0.0).cwiseSqrt().sum();

  const double fd = (m1 - m2).squaredNorm() + A.trace() + B.trace() - 2.0 * tr_sqrt;
  if (!std::isfinite(fd))
    throw std::invalid_argument(
        "frechet_distance: the result is not finite (means or covariances too large for double "
        "precision, or not finite)");
  return std::max(fd, 0.0);
}

double frechet_distance(const GaussianStats& a, const GaussianStats& b) {
  return frechet_distance(a.mean(), a.covariance(), b.mean(), b.covariance());
}

}  // namespace sdekit
