#include "experiments/spec_schema.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace sdekit {

std::vector<double> parse_number_list(const std::string& text, const std::string& option) {
  std::vector<double> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    std::size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size())
      throw std::invalid_argument(option + ": '" + item +
                                  "' is not a number (expected a comma "
                                  "separated list, e.g. 5,10,20)");
    out.push_back(v);
  }
  if (out.empty()) throw std::invalid_argument(option + ": the list is empty");
  return out;
}

std::vector<int> parse_nfe_list(const std::string& text) {
  std::vector<int> nfe;
  for (double v : parse_number_list(text, "--nfe")) {
    if (v != std::floor(v) || v < 1 || v > 1e7) {
      std::ostringstream os;
      os.precision(4);
      os << "--nfe: every NFE must be an integer >= 1, got " << v;
      throw std::invalid_argument(os.str());
    }
    nfe.push_back(static_cast<int>(v));
  }
  return nfe;
}

}  // namespace sdekit
