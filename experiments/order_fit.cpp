#include "experiments/order_fit.hpp"

#include <Eigen/Dense>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>

namespace sdekit {

namespace {
void check_inputs(const std::vector<double>& nfe, const std::vector<double>& err) {
  if (nfe.size() != err.size()) {
    std::ostringstream os;
    os << "order fit: " << nfe.size() << " NFE values but " << err.size() << " errors";
    throw std::invalid_argument(os.str());
  }
  for (std::size_t i = 0; i < nfe.size(); ++i) {
    if (!(nfe[i] > 0.0) || !std::isfinite(nfe[i]))
      throw std::invalid_argument("order fit: nfe[" + std::to_string(i) +
                                  "] must be finite and > 0");
    if (!(err[i] > 0.0) || !std::isfinite(err[i]))
      throw std::invalid_argument("order fit: err[" + std::to_string(i) +
                                  "] must be finite and > 0, got " + std::to_string(err[i]));
    if (i > 0 && !(nfe[i] > nfe[i - 1]))
      throw std::invalid_argument("order fit: NFE values must increase, got nfe[" +
                                  std::to_string(i - 1) + "] = " + std::to_string(nfe[i - 1]) +
                                  ", nfe[" + std::to_string(i) + "] = " + std::to_string(nfe[i]));
  }
}
}  // namespace

OrderFit fit_order(const std::vector<double>& nfe, const std::vector<double>& err,
                   std::size_t first, std::size_t last) {
  check_inputs(nfe, err);
  if (!(first < last && last < nfe.size())) {
    std::ostringstream os;
    os << "order fit: range [" << first << ", " << last << "] must hold at least 2 of the "
       << nfe.size() << " points";
    throw std::invalid_argument(os.str());
  }
  const auto n = static_cast<Eigen::Index>(last - first + 1);
  Eigen::MatrixXd A(n, 2);
  Eigen::VectorXd y(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    A(i, 0) = 1.0;
    A(i, 1) = std::log(nfe[first + static_cast<std::size_t>(i)]);
    y(i) = std::log(err[first + static_cast<std::size_t>(i)]);
  }
  const Eigen::Vector2d beta = A.colPivHouseholderQr().solve(y);
  OrderFit fit;
  fit.intercept = beta(0);
  fit.order = -beta(1);
  fit.first = first;
  fit.last = last;
  if (n > 2) {
    const double ssr = (y - A * beta).squaredNorm();
    const Eigen::VectorXd lx = A.col(1);
    const double sxx = (lx.array() - lx.mean()).square().sum();
    fit.std_error = std::sqrt(ssr / static_cast<double>(n - 2) / sxx);
  }
  return fit;
}

OrderFit fit_order_auto(const std::vector<double>& nfe, const std::vector<double>& err,
                        double floor, double tolerance) {
  check_inputs(nfe, err);
  if (nfe.size() < 2) throw std::invalid_argument("order fit: needs at least 2 points");
  std::size_t last = nfe.size() - 1;
  while (floor > 0.0 && last > 1 && err[last] <= 10.0 * floor) --last;
  const std::size_t min_points = last >= 2 ? 3 : 2;
  for (std::size_t first = 0; first + min_points <= last + 1; ++first) {
    const OrderFit fit = fit_order(nfe, err, first, last);
    bool straight = true;
    for (std::size_t i = first; i < last && straight; ++i) {
      const double local = -std::log(err[i + 1] / err[i]) / std::log(nfe[i + 1] / nfe[i]);
      straight = std::abs(local - fit.order) <= tolerance;
    }
    if (straight) return fit;
  }
  return fit_order(nfe, err, last + 1 - min_points, last);
}

}  // namespace sdekit
