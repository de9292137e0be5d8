#pragma once
// The skeleton every resumable study shares: the results folder (ResultsStore), the cells it
// already holds, progress with an ETA, and the cell loop that computes and stores what is
// missing. A study supplies its plan (the cells in order), how a cell is read from and written
// to its results line, its cost for the ETA, and (to run()) its computation. Private to
// experiments/.
#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "experiments/detail/spec_fields.hpp"
#include "experiments/results_store.hpp"
#include "experiments/study.hpp"

namespace sdekit::detail {

template <class Cell>
struct CellOps {
  std::function<Cell(const nlohmann::json&)> read;   // a stored line back into a cell
  std::function<nlohmann::json(const Cell&)> write;  // the line stored for a computed cell
  std::function<double(const Cell&)> cost;           // relative cost, for the ETA
  /// Planned cells that are reported but neither computed nor stored (default: all run).
  std::function<bool(const Cell&)> runnable = [](const Cell&) { return true; };
};

template <class Cell>
class StudyRunner {
 public:
  using Clock = std::chrono::steady_clock;

  /// Opens (or creates, or with `fresh` clears) the results folder for the spec and reads back
  /// the cells it holds; a stored cell that `ops.read` cannot read is refused here, before any
  /// work, with the file, the cell and the --fresh hint. `cells` is the plan, kept by reference.
  StudyRunner(const std::string& out_dir, const std::string& spec_json, bool fresh,
              const std::vector<std::string>& derived, std::vector<Cell>& cells, CellOps<Cell> ops,
              StudyProgressFn progress, Clock::time_point start = Clock::now())
      : store_(out_dir, spec_json, fresh, derived),
        cells_(cells),
        ops_(std::move(ops)),
        progress_(std::move(progress)),
        start_(start) {
    for (const auto& line : store_.lines()) {
      const nlohmann::json j = nlohmann::json::parse(line);
      try {
        stored_.emplace(j["cell"].get<std::string>(), ops_.read(j));
      } catch (const nlohmann::json::exception& e) {
        throw malformed(j, e.what());
      } catch (const std::invalid_argument& e) {
        throw malformed(j, e.what());
      }
    }
    for (const auto& c : cells_)
      if (!stored_.count(c.key()) && ops_.runnable(c)) {
        ++pending_;
        total_cost_ += ops_.cost(c);
      }
  }

  const ResultsStore& store() const { return store_; }
  double elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  /// Cells the loop will compute.
  std::size_t pending() const { return pending_; }
  /// Reports preparatory work (a reference solve) before the cells start.
  void announce(const std::string& what) const { report(0, what, -1.0); }

  /// Takes every planned cell in order: a stored one is read back (counted as resumed), a
  /// runnable one is filled in by `compute`, stored at once (one flushed line) and counted as
  /// computed.
  void run(const std::function<void(Cell&)>& compute) {
    const double t_cells = elapsed();
    double done_cost = 0;
    std::size_t done = 0;
    for (auto& c : cells_) {
      const std::string key = c.key();
      if (const auto it = stored_.find(key); it != stored_.end()) {
        c = it->second;
        ++resumed_;
        continue;
      }
      if (!ops_.runnable(c)) continue;
      const double spent = elapsed() - t_cells;
      report(done, key, done_cost > 0 ? spent / done_cost * (total_cost_ - done_cost) : -1.0);
      compute(c);
      store_.append(key, ops_.write(c).dump());
      ++computed_;
      ++done;
      done_cost += ops_.cost(c);
    }
    report(done, "", 0.0);
  }

  std::size_t resumed() const { return resumed_; }
  std::size_t computed() const { return computed_; }

 private:
  std::invalid_argument malformed(const nlohmann::json& line, const std::string& why) const {
    return std::invalid_argument(store_.path("results.jsonl") + ": cell " +
                                 json_preview(line["cell"]) + " is malformed (" + why +
                                 "); use --fresh to start over");
  }
  void report(std::size_t done, const std::string& cell, double eta) const {
    if (progress_) progress_(StudyProgress{done, pending_, cell, elapsed(), eta});
  }

  ResultsStore store_;
  std::vector<Cell>& cells_;
  CellOps<Cell> ops_;
  StudyProgressFn progress_;
  Clock::time_point start_;
  std::map<std::string, Cell> stored_;
  std::size_t pending_ = 0, resumed_ = 0, computed_ = 0;
  double total_cost_ = 0;
};

}  // namespace sdekit::detail
