#include "experiments/table.hpp"

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace sdekit {
namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string padded(const std::string& s, std::size_t width, Table::Align align) {
  const std::string fill(width > s.size() ? width - s.size() : 0, ' ');
  return align == Table::Align::Left ? s + fill : fill + s;
}

}  // namespace

Table& Table::column(std::string header, Align align) {
  if (!rows_.empty()) throw std::logic_error("Table::column: rows were already added");
  headers_.push_back(std::move(header));
  align_.push_back(align);
  return *this;
}

Table& Table::row(std::vector<std::string> cells) {
  if (cells.size() != headers_.size())
    throw std::invalid_argument("Table::row: expected " + std::to_string(headers_.size()) +
                                " cells, got " + std::to_string(cells.size()));
  rows_.push_back(std::move(cells));
  return *this;
}

std::string Table::markdown() const {
  std::vector<std::size_t> width(headers_.size(), 3);  // "---" at least
  for (std::size_t c = 0; c < headers_.size(); ++c) {
    width[c] = std::max(width[c], headers_[c].size());
    for (const auto& r : rows_) width[c] = std::max(width[c], r[c].size());
  }
  std::ostringstream os;
  auto line = [&](const std::vector<std::string>& cells) {
    os << "|";
    for (std::size_t c = 0; c < cells.size(); ++c)
      os << " " << padded(cells[c], width[c], align_[c]) << " |";
    os << "\n";
  };
  line(headers_);
  os << "|";
  for (std::size_t c = 0; c < headers_.size(); ++c)
    os << (align_[c] == Align::Right ? std::string(width[c] + 1, '-') + ":|"
                                     : std::string(width[c] + 2, '-') + "|");
  os << "\n";
  for (const auto& r : rows_) line(r);
  return os.str();
}

std::string Table::csv() const {
  std::ostringstream os;
  auto line = [&](const std::vector<std::string>& cells) {
    for (std::size_t c = 0; c < cells.size(); ++c) os << (c ? "," : "") << csv_field(cells[c]);
    os << "\n";
  };
  line(headers_);
  for (const auto& r : rows_) line(r);
  return os.str();
}

}  // namespace sdekit
