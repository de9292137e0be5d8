#pragma once
// Replayable noise (docs/theory.md section 4.16): the standard-normal draws of a stochastic run
// given in advance, so that a run can be replayed draw for draw against another implementation
// or a paper's script. `blocks` is [K, n, ...]: block k is the k-th draw the sampler makes, each
// shaped like the state [n, ...], in the order the sampler asks for them (every
// RunContext::standard_normal / standard_normal_into / wiener call is one draw,
// wiener_and_area two, the Langevin correctors one per corrector step). With a generator
// instead, exactly these draws come from it in the same order, so the generator's draws written
// out as blocks replay its run bit for bit (float64).
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace sdekit {

/// A run asked for more draws than the replay holds.
class NoiseExhausted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class NoiseReplay {
 public:
  /// blocks [K, ...] (K >= 1, floating point, finite); `source` names them in errors. Throws
  /// std::invalid_argument otherwise.
  NoiseReplay(at::Tensor blocks, std::string source);
  /// A replay that hands out zeros and only counts the draws (how many a run needs).
  static std::shared_ptr<NoiseReplay> counter();
  /// Row-keyed draws (row_noise.hpp, docs/theory.md section 10.1): the k-th draw of the run
  /// (k = 1, 2, ...; draw 0 is x_T) for the rows first_row, first_row + 1, ... Never exhausted.
  static std::shared_ptr<NoiseReplay> rows(uint64_t seed, int64_t first_row);

  /// The next block into `out`, whose shape must be the blocks' [n, ...] (std::invalid_argument
  /// naming both shapes); NoiseExhausted when every block has been used.
  void next_into(at::Tensor& out);
  /// The next block as a new tensor like `like`.
  at::Tensor next(const at::Tensor& like);
  int64_t used() const { return used_; }
  /// A fresh replay of rows [lo, lo + count) of every block (of a keyed replay: its rows from
  /// first_row + lo), for a run over part of the rows; std::invalid_argument outside the rows.
  std::shared_ptr<NoiseReplay> rows_slice(int64_t lo, int64_t count) const;
  int64_t size() const { return counting_ || keyed_ ? -1 : blocks_.size(0); }
  const std::string& source() const { return source_; }

 private:
  NoiseReplay() = default;
  at::Tensor blocks_;
  std::string source_;
  int64_t used_ = 0;
  bool counting_ = false;
  bool keyed_ = false;
  uint64_t seed_ = 0;
  int64_t first_row_ = 0;
};
using NoiseReplayPtr = std::shared_ptr<NoiseReplay>;

}  // namespace sdekit
