#pragma once
// Parameter checks shared by the schedules: std::invalid_argument naming schedule, field,
// expected and got.
#include <sstream>
#include <stdexcept>
#include <string>

namespace sdekit {

inline void require_param(const std::string& who, const std::string& field, double got, bool ok,
                          const std::string& expected) {
  if (ok && got == got) return;
  std::ostringstream os;
  os << who << ": parameter '" << field << "' must be " << expected << ", got " << got;
  throw std::invalid_argument(os.str());
}

}  // namespace sdekit
