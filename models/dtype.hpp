#pragma once
// The floating-point dtypes sdekit computes in, by name: "float32" and "float64".
#include <c10/core/ScalarType.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace sdekit {

/// "float32" -> kFloat, "float64" -> kDouble; any other name throws std::invalid_argument
/// listing the valid ones.
inline c10::ScalarType parse_dtype(std::string_view name) {
  if (name == "float32") return c10::kFloat;
  if (name == "float64") return c10::kDouble;
  throw std::invalid_argument("unknown dtype '" + std::string(name) + "'; valid: float32, float64");
}

}  // namespace sdekit
