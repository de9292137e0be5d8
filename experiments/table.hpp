#pragma once
// One writer for every table sdekit prints or stores: columns with a header and an alignment,
// rows of text cells, rendered as a Markdown table (columns padded to their widest cell) or as
// CSV (RFC 4180: a field is quoted when it holds a comma, a quote or a line break).
#include <cstddef>
#include <string>
#include <vector>

namespace sdekit {

class Table {
 public:
  enum class Align { Left, Right };
  /// Adds a column (before any row).
  Table& column(std::string header, Align align = Align::Right);
  /// Adds a row; throws std::invalid_argument unless it has one cell per column.
  Table& row(std::vector<std::string> cells);
  std::size_t rows() const { return rows_.size(); }
  std::size_t columns() const { return headers_.size(); }
  /// "| a | b |" lines: the header, the alignment row ("---" / "---:"), then the rows.
  std::string markdown() const;
  /// The header line and one line per row, each ending in "\n".
  std::string csv() const;

 private:
  std::vector<std::string> headers_;
  std::vector<Align> align_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace sdekit
