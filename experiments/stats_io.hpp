#pragma once
// Frechet statistics files in the layout of pytorch-fid: a numpy .npz archive (a zip of .npy
// arrays) with mu [d] and sigma [d, d], read as f['mu'] and f['sigma']. Files written here also
// hold the sample count n, so that statistics saved per shard can be merged again.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "experiments/frechet.hpp"

namespace sdekit {

/// Writes `stats` to `path` as numpy.savez(path, mu=mu, sigma=sigma, n=n) would: a zip archive
/// with stored (uncompressed) entries mu.npy ([d] '<f8', C order), sigma.npy ([d, d] '<f8', the
/// unbiased covariance M2 / (n - 1)) and n.npy (0-d '<i8', the sample count). pytorch-fid and
/// numpy.load read it; pytorch-fid ignores the extra key n.
/// The archive is written to a temporary file in the destination folder and renamed over `path`
/// on success, so an interrupted write leaves either the old file or none, never a partial one.
/// Throws std::invalid_argument when stats.count < 2 or the statistics are not finite, and
/// std::runtime_error naming the file when it cannot be written.
void write_stats_npz(const std::string& path, const GaussianStats& stats);

/// The contents of a statistics file.
struct StatsFile {
  at::Tensor mu;       // [d] float64, CPU
  at::Tensor sigma;    // [d, d] float64, CPU, C-contiguous
  int64_t count = -1;  // the sample count n; -1: the file holds no n
};

/// Reads a statistics .npz written by numpy.savez or numpy.savez_compressed (stored or deflated
/// entries), by pytorch-fid, or by write_stats_npz. The entries mu.npy and sigma.npy are
/// required; n.npy is optional (any integer dtype, one element); other entries are ignored.
/// mu and sigma may be float32 or float64, little- or big-endian, in C or Fortran order; they
/// are returned as float64 CPU tensors (float32 values convert exactly).
/// Throws std::invalid_argument whose message names the file and the problem: it cannot be
/// opened (with the system's or libzip's reason), is not a zip archive or is truncated, lacks
/// mu or sigma (the keys that were found are listed), has a bad .npy header, an unsupported dtype
/// (named), shapes other than mu [d] and sigma [d, d], non-finite values, a negative n, or less
/// data than its header promises.
StatsFile read_stats_npz(const std::string& path);

/// Checks that the statistics read from `path` can be compared: mu and sigma finite, sigma
/// symmetric and positive semi-definite up to the rounding that made it (relative 1e-5 of its
/// largest entry and eigenvalue), and of a magnitude a distance can be computed from. Throws
/// std::invalid_argument naming the file and the problem.
void check_covariance(const StatsFile& stats, const std::string& path);

/// Rebuilds a mergeable accumulator from a file's contents: count = n, mu = mu,
/// m2 = sigma * (n - 1). Throws std::invalid_argument when the file holds no n (count == -1, as
/// in files written by pytorch-fid) or n < 2, or when the shapes do not match.
GaussianStats to_gaussian_stats(const StatsFile& file);

}  // namespace sdekit
