#pragma once
// Plots for the command-line app: error-vs-NFE convergence lines, 2-D samples over the contours
// of a log-density, and image grids.
//
// The line and scatter plots are drawn by gnuplot (Debian package gnuplot-nox). Each function
// writes, next to the PNG, its data file(s) and a self-contained gnuplot script FILE.gp that refers
// to them by relative name and is run from the PNG's folder (`cd DIR && gnuplot FILE.gp`). The
// script picks the `pngcairo` terminal when gnuplot has it and falls back to libgd's `png`. When
// gnuplot is not on PATH nothing fails: the files are written and PlotResult::rendered is false.
// Missing parent folders of the output path are created.
//
// Image grids are written directly as PNG (stb_image_write), without gnuplot.
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/gaussian_mixture.hpp"

namespace sdekit {

struct PlotResult {
  bool rendered = false;  ///< gnuplot ran and wrote `png`
  std::string png;        ///< the PNG path (as given)
  std::string script;     ///< the gnuplot script written next to it
  std::string message;    ///< one line for the user: what was written, skipped or left to do
};

/// One line of a log-log plot: points (x[i], y[i]), drawn in the given order.
struct Series {
  std::string label;
  std::vector<double> x, y;
};

/// Log-log lines with points, one per series (up to 70 series get distinct colour / point-type
/// pairs; the legend sits outside the plot area on the right), plus a dashed reference line of
/// slope -p for each p in `reference_slopes`, labelled "O(NFE^-p)" and drawn through the geometric
/// mean of the series' first plotted points, and a dotted horizontal line at `floor` when
/// floor > 0, labelled "reference floor". The axes' ranges are those of the data (and the floor),
/// so reference lines are clipped to them.
///
/// Points whose x or y is not positive and finite cannot go on log axes; they are skipped (and
/// counted in the message) and a series left without points is left out of the plot. Files:
/// STEM.gp and STEM.dat (one block per plotted series, "x y" lines, separated by two blank lines,
/// each headed by "# series: LABEL"), where STEM is png_path without its extension. The PNG is
/// 1000 x 600 pixels, taller when the legend has more than 27 entries (140 + 17 per entry) and
/// wider when a label is longer than 24 characters (7 pixels per extra character, at most 1595).
///
/// Throws std::invalid_argument when a series' x and y differ in length or when no point at all
/// can be plotted, std::runtime_error (with gnuplot's output) when gnuplot fails or when a file
/// cannot be written (naming it).
PlotResult plot_loglog(const std::string& png_path, const std::string& title,
                       const std::string& xlabel, const std::string& ylabel,
                       const std::vector<Series>& series,
                       const std::vector<double>& reference_slopes, double floor = 0);

/// A scatter of 2-D samples [n, 2] (any floating dtype or device; small semi-transparent points)
/// over coloured contour lines of `log_density`, evaluated on a grid x grid lattice covering the
/// samples: per axis the 0.5 to 99.5 percentile range of the finite samples plus a 10% margin
/// (samples outside it are clipped from the picture). Contours are at 8 levels below the
/// grid's maximum (in nats: 0.25, 1, 2.25, ..., 16 below it, or evenly spaced over the grid's
/// range when that is under 16 nats). Non-finite samples are skipped; non-finite log-density values
/// are treated as far below every level. Files: STEM.gp, STEM_samples.dat ("x y" lines) and
/// STEM_density.dat (gnuplot grid blocks "x y logp"). The PNG is 800 x 720 pixels; axes share
/// one scale unless the two ranges differ by more than a factor of 3.
///
/// Throws std::invalid_argument when samples is not [n, 2] with n >= 1 (naming the shape expected
/// and got), when no sample is finite, or when grid < 2; std::runtime_error as plot_loglog.
PlotResult plot_scatter_density(const std::string& png_path, const std::string& title,
                                const at::Tensor& samples,
                                const std::function<double(double, double)>& log_density,
                                int grid = 120);

/// The same over the noised marginal p_t of a 2-D mixture, log p_t = mixture.log_prob(., alpha,
/// sigma) (alpha = 1, sigma = 0: the data density), evaluated in one batched call. Throws
/// std::invalid_argument also when the mixture is not 2-dimensional or sigma < 0.
PlotResult plot_scatter_density(const std::string& png_path, const std::string& title,
                                const at::Tensor& samples, const GaussianMixture& mixture,
                                double alpha, double sigma, int grid = 120);

/// Writes images [n, C, H, W] (C = 1: grey, C = 3: RGB; any real dtype or device) as one PNG,
/// tiled row-major in `columns` columns (0: ceil(sqrt(n)); more than n: n) with `padding`
/// background pixels between neighbouring tiles (none around the border). Empty cells of the last
/// row and the padding are white (255). Pixel values map linearly from [lo, hi] to 0..255,
/// rounded to nearest with halves up and clamped: with the defaults -1 -> 0, 0 -> 128, 1 -> 255.
/// The PNG has C channels, width columns * W + (columns - 1) * padding and height
/// rows * H + (rows - 1) * padding, rows = ceil(n / columns).
///
/// Throws std::invalid_argument for another shape (naming the shape expected and got), n = 0,
/// NaN values, negative columns or padding, or lo >= hi / non-finite lo, hi; std::runtime_error
/// naming the path when the file cannot be written.
void write_image_grid_png(const std::string& png_path, const at::Tensor& images, int columns = 0,
                          int padding = 2, double lo = -1.0, double hi = 1.0);

/// The same for flat rows [n, prod(image_shape)], each reshaped to image_shape = {C, H, W} or
/// {H, W} (grey), e.g. {28, 28} for MNIST-like rows of 784 values.
void write_image_grid_png(const std::string& png_path, const at::Tensor& rows,
                          const std::vector<int64_t>& image_shape, int columns = 0, int padding = 2,
                          double lo = -1.0, double hi = 1.0);

}  // namespace sdekit
