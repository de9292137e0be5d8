#include "datasets/toy.hpp"

#include <c10/util/MathConstants.h>

#include <stdexcept>

namespace sdekit {
namespace {

constexpr double kPi = c10::pi<double>;

at::Tensor two_moons(int64_t n, at::Generator& gen) {
  constexpr double kNoise = 0.05;  // before the factor 2
  const int64_t n_upper = n - n / 2;
  const at::Tensor theta = at::rand({n}, gen, at::kDouble) * kPi;
  const at::Tensor upper = at::arange(n, at::kLong).lt(n_upper).to(at::kDouble);  // 1 or 0
  const at::Tensor sign = upper * 2.0 - 1.0;  // +1 upper, -1 lower
  // upper: (cos, sin); lower: (1 - cos, 1/2 - sin).
  const at::Tensor x = sign * at::cos(theta) + (1.0 - upper);
  const at::Tensor y = sign * at::sin(theta) + 0.5 * (1.0 - upper);
  at::Tensor p = at::stack({x, y}, 1) + kNoise * at::randn({n, 2}, gen, at::kDouble);
  p = 2.0 * (p - at::tensor({0.5, 0.25}, at::kDouble));
  return p.index_select(0, at::randperm(n, gen, at::kLong));
}

at::Tensor swiss_roll(int64_t n, at::Generator& gen) {
  constexpr double kNoise = 0.1;  // after the factor 1/5
  const at::Tensor t = 1.5 * kPi * (1.0 + 2.0 * at::rand({n}, gen, at::kDouble));
  const at::Tensor p = at::stack({t * at::cos(t), t * at::sin(t)}, 1) / 5.0;
  return p + kNoise * at::randn({n, 2}, gen, at::kDouble);
}

at::Tensor checkerboard(int64_t n, at::Generator& gen) {
  const at::Tensor x = at::rand({n}, gen, at::kDouble) * 4.0 - 2.0;
  // y in [0, 1) or [-2, -1), moved up by one where floor(x) is odd: floor(x) + floor(y) is even.
  const at::Tensor v = at::rand({n}, gen, at::kDouble);
  const at::Tensor k = at::randint(2, {n}, gen, at::kDouble);
  const at::Tensor y = v - 2.0 * k + at::floor(x).remainder(2.0);
  return at::stack({x, y}, 1);
}

}  // namespace

const std::vector<std::string>& toy_dataset_names() {
  static const std::vector<std::string> names = {"two-moons", "swiss-roll", "checkerboard"};
  return names;
}

at::Tensor toy_dataset(const std::string& name, int64_t n, at::Generator& gen) {
  at::Tensor (*make)(int64_t, at::Generator&) = nullptr;
  if (name == "two-moons") {
    make = two_moons;
  } else if (name == "swiss-roll") {
    make = swiss_roll;
  } else if (name == "checkerboard") {
    make = checkerboard;
  } else {
    std::string valid;
    for (const auto& v : toy_dataset_names()) valid += (valid.empty() ? "" : ", ") + v;
    throw std::invalid_argument("toy_dataset: unknown data set '" + name + "' (valid: " + valid +
                                ")");
  }
  if (n < 0)
    throw std::invalid_argument("toy_dataset: '" + name + "': n must be >= 0, got " +
                                std::to_string(n));
  return make(n, gen);
}

}  // namespace sdekit
