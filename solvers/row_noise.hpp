#pragma once
// Row-keyed standard normals (docs/theory.md section 10.1): draw k of row i is a function of
// (seed, i, k) alone, through the counter-based Philox4x32-10 generator keyed by the seed with
// the row as its subsequence and the draw as its offset. A row's x_T and its noise therefore do
// not change with the batch size, the number of processes or how the rows are split among them.
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>

namespace sdekit {

/// Where a run's x_T and sampler noise come from.
enum class RngKind {
  Rows,       // row-keyed (row_normal_into): the default
  Generator,  // one CPU generator for the whole batch (x_T first, then the sampler's draws)
};
/// "rows" | "generator"; std::invalid_argument naming `flag` and the value otherwise.
RngKind parse_rng(const std::string& name, const std::string& flag = "--rng");
std::string rng_name(RngKind kind);

/// Fills `out` ([n, ...], any floating dtype and device) with row-keyed standard normals: row r
/// of out gets the first numel/n values of the stream (seed, first_row + r, draw). The values are
/// computed in float64 on the CPU and cast, so float32 runs see the rounded float64 draws.
void row_normal_into(at::Tensor& out, uint64_t seed, int64_t first_row, uint64_t draw);
/// The same as a new tensor of `shape` and `options`.
at::Tensor row_normal(at::IntArrayRef shape, at::TensorOptions options, uint64_t seed,
                      int64_t first_row, uint64_t draw);

}  // namespace sdekit
