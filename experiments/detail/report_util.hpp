#pragma once
// Small helpers shared by the study runners (converge, fid_table): number formatting, JSON
// numbers that may be NaN, and whole-file writes through a rename. Private to experiments/.
#include <ATen/ATen.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace sdekit::detail {

/// `prec` significant digits; NaN prints as "-".
inline std::string fmt(double v, int prec = 3) {
  if (std::isnan(v)) return "-";
  std::ostringstream os;
  os << std::setprecision(prec) << v;
  return os.str();
}

/// "[3, 2]".
inline std::string shape_text(at::IntArrayRef s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

/// Full precision for CSV; NaN as an empty field.
inline std::string csv_num(double v) {
  if (std::isnan(v)) return "";
  std::ostringstream os;
  os << std::setprecision(10) << v;
  return os.str();
}

/// A double as JSON: non-finite values become null (JSON has no NaN).
inline nlohmann::json json_num(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}
/// The inverse: a missing or null field reads as NaN.
inline double json_num_of(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::numeric_limits<double>::quiet_NaN();
  return j[key].get<double>();
}

/// Writes `text` to path via path.tmp and a rename, so readers never see half a file.
inline void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(tmp + ": cannot open for writing");
    out << text;
    out.flush();
    if (!out) throw std::runtime_error(tmp + ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    throw std::runtime_error(path + ": cannot rename from " + tmp + " (" + ec.message() + ")");
}

/// "a, b, c".
inline std::string join(const std::vector<std::string>& items, const std::string& sep = ", ") {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

}  // namespace sdekit::detail
