#pragma once
// A results folder that makes a study resumable. It holds
//   spec.json      the study's specification (a JSON object), written when the folder is created;
//   results.jsonl  one JSON object per finished cell, each appended with one write() on an
//                  O_APPEND descriptor and fsync'd at once, so an interrupt (Ctrl-C, kill)
//                  loses at most the cell in progress.
// Reopening the folder with the same spec resumes: finished cells are known by their key (the
// "cell" field of each line) and can be skipped. A different spec is refused with the fields
// that differ, unless `fresh` asks to start over.
#include <string>
#include <unordered_set>
#include <vector>

namespace sdekit {

class ResultsStore {
 public:
  /// Opens or creates `dir` for a study whose specification is `spec_json` (a JSON object).
  /// Throws std::invalid_argument when dir cannot be created or written, when spec.json or a
  /// line of results.jsonl is malformed (file, line and reason), or when the stored spec differs
  /// from spec_json (message: "field: stored X, now Y" for each field, and the --fresh hint).
  /// fresh: removes spec.json, results.jsonl and the files named in `derived` first.
  /// A last line without its newline (a write cut short) is dropped from the file.
  ///
  /// The folder is locked for the store's lifetime (an advisory flock on dir/.lock, which
  /// records the holder's pid and start time): a second run on the same folder is refused with
  /// std::invalid_argument naming the holder. Stores of one process on the same folder share the
  /// lock. Once locked, temporary files left by an
  /// interrupted write (names containing ".tmp", in dir and dir/stats) are removed.
  ResultsStore(std::string dir, const std::string& spec_json, bool fresh,
               const std::vector<std::string>& derived = {});
  ResultsStore(const ResultsStore&) = delete;
  ResultsStore& operator=(const ResultsStore&) = delete;

  const std::string& dir() const { return dir_; }
  /// dir/name.
  std::string path(const std::string& name) const;
  bool has(const std::string& key) const { return keys_.count(key) > 0; }
  /// The stored lines (JSON objects) in file order, including those appended since opening.
  const std::vector<std::string>& lines() const { return lines_; }
  /// Cells found when the folder was opened.
  std::size_t resumed() const { return resumed_; }
  /// Whether a partial last line was dropped when opening.
  bool dropped_partial_line() const { return dropped_partial_; }

  /// Appends one cell: `json_object` must be a JSON object whose "cell" field is `key` (checked);
  /// written as one line, flushed to disk before returning. Throws std::runtime_error when the
  /// write fails, std::invalid_argument for a duplicate key or a malformed object.
  void append(const std::string& key, const std::string& json_object);

 private:
  // The lock's descriptor, closed (and the lock released) with the store, also when the
  // constructor throws after taking it.
  struct LockFd {
    int fd = -1;
    LockFd() = default;
    LockFd(const LockFd&) = delete;
    LockFd& operator=(const LockFd&) = delete;
    ~LockFd();
  };
  std::string dir_;
  LockFd lock_;
  std::vector<std::string> lines_;
  std::unordered_set<std::string> keys_;
  std::size_t resumed_ = 0;
  bool dropped_partial_ = false;
};

/// Field-by-field differences between two JSON objects given as text, as lines
/// "field: stored <a>, now <b>" (fields missing on one side print as "(absent)"). Empty when
/// equal. Throws std::invalid_argument when either text is not a JSON object.
std::vector<std::string> json_object_diff(const std::string& stored, const std::string& now);

}  // namespace sdekit
