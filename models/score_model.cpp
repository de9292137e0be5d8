#include "models/score_model.hpp"

namespace sdekit {

at::Tensor ScoreModel::predict_at(const at::Tensor& x, double t) {
  return predict(x, at::full({x.size(0)}, t, x.options()));
}

}  // namespace sdekit
