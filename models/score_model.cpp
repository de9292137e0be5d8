#include "models/score_model.hpp"

#include <stdexcept>

namespace sdekit {

at::Tensor ScoreModel::predict_at(const at::Tensor& x, double t) {
  return predict(x, at::full({x.size(0)}, t, x.options()));
}

at::Tensor ScoreModel::predict_grad(const at::Tensor&, const at::Tensor&) {
  throw std::invalid_argument("model '" + name() +
                              "' cannot give gradients (its predictions are not recorded by "
                              "autograd); the likelihood's divergence needs them");
}

}  // namespace sdekit
