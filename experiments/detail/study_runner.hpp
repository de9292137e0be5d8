#pragma once
// The skeleton every resumable study shares: the results folder (ResultsStore), the cells it
// already holds, progress with an ETA, and the cell loop that computes and stores what is
// missing. A study supplies its plan (the cells in order), how a cell is read from and written
// to its results line, its cost for the ETA, and (to run()) its computation. Private to
// experiments/.
//
// Over several processes (docs/theory.md section 10) rank 0 alone opens the results folder and
// writes it; the others receive the stored cells from it, so every rank holds the same plan of
// pending cells. run() then either takes every cell on every rank (Share::Rows: the computation
// splits the cell's rows and reduces over the ranks) or hands whole cells to ranks from a shared
// queue (Share::Cells: each rank computes its cells alone and hands the results line to rank 0,
// which appends it as it arrives).
#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "experiments/detail/spec_fields.hpp"
#include "experiments/distributed.hpp"
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

/// How a study's cells go to the ranks of a run over several processes.
enum class Share { Rows, Cells };

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
      : cells_(cells), ops_(std::move(ops)), progress_(std::move(progress)), start_(start) {
    std::vector<std::string> lines;
    if (dist::writer()) {
      try {
        store_.emplace(out_dir, spec_json, fresh, derived);
      } catch (const std::exception& e) {
        // The others stop with rank 0's reason instead of waiting for it.
        if (dist::active())
          dist::broadcast_text(nlohmann::json{{"error", e.what()}}.dump(),
                               "opening the results folder");
        throw;
      }
      lines = store_->lines();
      if (dist::active())
        dist::broadcast_text(nlohmann::json{{"lines", lines}}.dump(), "opening the results folder");
    } else {
      const nlohmann::json j =
          nlohmann::json::parse(dist::broadcast_text("", "opening the results folder"));
      if (j.contains("error"))
        throw std::invalid_argument("rank 0: " + j["error"].get<std::string>());
      lines = j.at("lines").get<std::vector<std::string>>();
    }
    for (const auto& line : lines) {
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

  /// The results folder: rank 0 only (std::logic_error on the others, which write nothing).
  const ResultsStore& store() const {
    if (!store_) throw std::logic_error("StudyRunner::store: only rank 0 holds the results folder");
    return *store_;
  }
  double elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  /// Cells the loop will compute.
  std::size_t pending() const { return pending_; }
  /// Reports preparatory work (a reference solve) before the cells start.
  void announce(const std::string& what) const { report(0, what, -1.0); }

  /// Takes every planned cell in order: a stored one is read back (counted as resumed), a
  /// runnable one is filled in by `compute`, stored at once (one flushed line) and counted as
  /// computed.
  /// Over several processes, `share` says how the cells go to the ranks (see the top of this
  /// file); in one process both take the cells in order.
  void run(const std::function<void(Cell&)>& compute, Share share = Share::Rows) {
    if (dist::active() && share == Share::Cells) return run_queue(compute);
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
      if (store_) store_->append(key, ops_.write(c).dump());
      ++computed_;
      ++done;
      done_cost += ops_.cost(c);
    }
    report(done, "", 0.0);
  }

  std::size_t resumed() const { return resumed_; }
  std::size_t computed() const { return computed_; }

 private:
  // Share::Cells over several processes: the pending cells in plan order, handed out by a shared
  // counter. Rank 0 appends its own lines and, between its cells and at the end, those the
  // others hand over; stored cells are read back into the plan on rank 0.
  void run_queue(const std::function<void(Cell&)>& compute) {
    std::vector<std::size_t> todo;
    for (std::size_t i = 0; i < cells_.size(); ++i) {
      const std::string key = cells_[i].key();
      if (const auto it = stored_.find(key); it != stored_.end()) {
        cells_[i] = it->second;
        ++resumed_;
      } else if (ops_.runnable(cells_[i])) {
        todo.push_back(i);
      }
    }
    const bool w = dist::writer();
    std::set<std::size_t> mine, collected;
    const auto store_line = [&](std::size_t k, const std::string& line) {
      Cell& c = cells_[todo[k]];
      store_->append(c.key(), line);
      c = ops_.read(nlohmann::json::parse(line));
      c.resumed = false;
      collected.insert(k);
    };
    // Lines the others have handed over so far (rank 0).
    const auto drain = [&](std::size_t upto) {
      for (std::size_t k = 0; k < upto && k < todo.size(); ++k)
        if (!mine.count(k) && !collected.count(k) && dist::has("cell/" + std::to_string(k)))
          store_line(k, dist::take("cell/" + std::to_string(k), "reading a handed-over cell"));
    };
    const double t_cells = elapsed();
    std::size_t done = 0;
    double done_cost = 0;
    std::size_t taken = 0;
    while (true) {
      const auto k = static_cast<std::size_t>(dist::queue_next("cells"));
      taken = std::max(taken, k + 1);
      if (k >= todo.size()) break;
      Cell& c = cells_[todo[k]];
      dist::put("owner/" + std::to_string(k), std::to_string(dist::rank()));
      const double spent = elapsed() - t_cells;
      report(done, c.key(), done_cost > 0 ? spent / done_cost * (total_cost_ - done_cost) : -1.0);
      compute(c);
      const std::string line = ops_.write(c).dump();
      ++done;
      done_cost += ops_.cost(c);
      if (w) {
        mine.insert(k);
        store_->append(c.key(), line);
        ++computed_;
        drain(taken);
      } else {
        dist::put("cell/" + std::to_string(k), line);
      }
    }
    if (w) {
      // Every pending cell has been taken: wait for the others' lines.
      for (std::size_t k = 0; k < todo.size(); ++k) {
        if (mine.count(k) || collected.count(k)) continue;
        const std::string key = cells_[todo[k]].key();
        const int owner = std::stoi(dist::take("owner/" + std::to_string(k), "the queue"));
        store_line(
            k, dist::take_from("cell/" + std::to_string(k), owner,
                               "waiting for cell " + key + " from rank " + std::to_string(owner)));
      }
      computed_ += collected.size();
    }
    report(done, "", 0.0);
  }

  std::invalid_argument malformed(const nlohmann::json& line, const std::string& why) const {
    return std::invalid_argument(
        (store_ ? store_->path("results.jsonl") : std::string("results.jsonl")) + ": cell " +
        json_preview(line["cell"]) + " is malformed (" + why + "); use --fresh to start over");
  }
  void report(std::size_t done, const std::string& cell, double eta) const {
    if (progress_) progress_(StudyProgress{done, pending_, cell, elapsed(), eta});
  }

  std::optional<ResultsStore> store_;  // rank 0 only
  std::vector<Cell>& cells_;
  CellOps<Cell> ops_;
  StudyProgressFn progress_;
  Clock::time_point start_;
  std::map<std::string, Cell> stored_;
  std::size_t pending_ = 0, resumed_ = 0, computed_ = 0;
  double total_cost_ = 0;
};

}  // namespace sdekit::detail
