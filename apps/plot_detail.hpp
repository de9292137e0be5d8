#pragma once
// What the plot files share (apps/plot_*.cpp): number and string formatting for gnuplot scripts,
// the files of one plot, and rendering through gnuplot.
#include <ATen/ATen.h>

#include <array>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "apps/plot.hpp"

namespace sdekit::plot_detail {

namespace fs = std::filesystem;

std::string shape_str(at::IntArrayRef sizes);
/// A number as gnuplot reads it back exactly, and a short one for labels.
std::string num(double v);
std::string short_num(double v);
/// A string as a gnuplot string literal, and as one shell word.
std::string gp_quote(const std::string& s);
std::string shell_quote(const std::string& s);

// The files of one plot: the PNG, the script and data files next to it, named after its stem.
struct PlotFiles {
  fs::path png, dir, script;
  std::string stem;

  explicit PlotFiles(const std::string& png_path) {
    if (png_path.empty()) throw std::invalid_argument("plot: the output path is empty");
    png = fs::path(png_path);
    dir = png.has_parent_path() ? png.parent_path() : fs::path(".");
    stem = png.stem().string();
    script = dir / (stem + ".gp");
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec)
      throw std::runtime_error("cannot create the folder " + dir.string() + " for " + png_path +
                               ": " + ec.message());
  }
  fs::path sibling(const std::string& suffix) const { return dir / (stem + suffix); }
};

void write_file(const fs::path& path, const std::string& text);
/// The first executable regular file named gnuplot on PATH, or "" when there is none.
std::string find_gnuplot();
/// Opens the script: terminal (pngcairo when this gnuplot has it, else libgd's png), output.
std::string script_preamble(const PlotFiles& files, int width, int height);
/// Runs the script from the PNG's folder when gnuplot is there; the message says what happened.
PlotResult render(const PlotFiles& files, const std::string& notes);

// 70 distinct colour / point-type pairs: colour i % 10, point type i % 7.
constexpr std::array<const char*, 10> kColours = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                                  "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                                  "#bcbd22", "#17becf"};
constexpr std::array<int, 7> kPointTypes = {7, 5, 9, 11, 13, 6, 4};

/// The q-quantile of v (linear interpolation between order statistics).
double quantile(std::vector<double> v, double q);
/// log10 range [lo, hi] padded by a share of its width (at least min_pad decades).
std::pair<double, double> log_range(double lo, double hi, double share, double min_pad);

}  // namespace sdekit::plot_detail
