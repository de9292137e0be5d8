// Log-log line plots with reference slopes (apps/plot.hpp).
#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <iomanip>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "apps/plot_detail.hpp"

namespace sdekit {

using namespace plot_detail;

// ------------------------------------------------------------------------------------------

PlotResult plot_loglog(const std::string& png_path, const std::string& title,
                       const std::string& xlabel, const std::string& ylabel,
                       const std::vector<Series>& series,
                       const std::vector<double>& reference_slopes, double floor) {
  for (const Series& se : series)
    if (se.x.size() != se.y.size())
      throw std::invalid_argument("plot_loglog: series '" + se.label + "' has " +
                                  std::to_string(se.x.size()) + " x values but " +
                                  std::to_string(se.y.size()) + " y values");
  for (double p : reference_slopes)
    if (!std::isfinite(p))
      throw std::invalid_argument("plot_loglog: reference slopes must be finite, got " + num(p));

  struct Plotted {
    size_t index;  // into series
    std::vector<double> x, y;
  };
  std::vector<Plotted> plotted;
  size_t skipped = 0;
  std::vector<std::string> empty;
  auto ok = [](double v) { return std::isfinite(v) && v > 0; };
  for (size_t i = 0; i < series.size(); ++i) {
    Plotted pl{i, {}, {}};
    for (size_t k = 0; k < series[i].x.size(); ++k) {
      if (ok(series[i].x[k]) && ok(series[i].y[k])) {
        pl.x.push_back(series[i].x[k]);
        pl.y.push_back(series[i].y[k]);
      } else {
        ++skipped;
      }
    }
    if (pl.x.empty())
      empty.push_back(series[i].label);
    else
      plotted.push_back(std::move(pl));
  }
  if (plotted.empty())
    throw std::invalid_argument(
        "plot_loglog: nothing to plot: no series has a point with positive finite x and y");

  double xmin = std::numeric_limits<double>::infinity(), xmax = 0;
  double ymin = std::numeric_limits<double>::infinity(), ymax = 0;
  double log_xa = 0, log_ya = 0;
  for (const Plotted& pl : plotted) {
    for (size_t k = 0; k < pl.x.size(); ++k) {
      xmin = std::min(xmin, pl.x[k]);
      xmax = std::max(xmax, pl.x[k]);
      ymin = std::min(ymin, pl.y[k]);
      ymax = std::max(ymax, pl.y[k]);
    }
    log_xa += std::log(pl.x.front());
    log_ya += std::log(pl.y.front());
  }
  const double xa = std::exp(log_xa / static_cast<double>(plotted.size()));
  const double ya = std::exp(log_ya / static_cast<double>(plotted.size()));
  const bool draw_floor = std::isfinite(floor) && floor > 0;
  if (draw_floor) {
    ymin = std::min(ymin, floor);
    ymax = std::max(ymax, floor);
  }
  const auto [x0, x1] = log_range(xmin, xmax, 0.04, 0.05);
  const auto [y0, y1] = log_range(ymin, ymax, 0.06, 0.1);
  const bool many_decades = std::log10(ymax / ymin) >= 2;

  PlotFiles files(png_path);
  const fs::path data_file = files.sibling(".dat");
  {
    std::ostringstream d;
    d << "# " << plotted.size() << " series (x y), separated by two blank lines\n";
    for (size_t b = 0; b < plotted.size(); ++b) {
      if (b) d << "\n\n";
      std::string label = series[plotted[b].index].label;
      std::replace(label.begin(), label.end(), '\n', ' ');
      d << "# series: " << label << "\n";
      for (size_t k = 0; k < plotted[b].x.size(); ++k)
        d << num(plotted[b].x[k]) << " " << num(plotted[b].y[k]) << "\n";
    }
    write_file(data_file, d.str());
  }

  const size_t entries = plotted.size() + reference_slopes.size() + (draw_floor ? 1 : 0);
  const int height = std::max(600, 140 + 17 * static_cast<int>(entries));
  size_t longest = 0;
  for (const Plotted& pl : plotted) longest = std::max(longest, series[pl.index].label.size());
  const int width =
      static_cast<int>(1000 + 7 * (std::min<size_t>(std::max<size_t>(longest, 24), 109) - 24));
  std::ostringstream s;
  s << script_preamble(files, width, height);
  s << "set title " << gp_quote(title) << " noenhanced\n"
    << "set xlabel " << gp_quote(xlabel) << " noenhanced\n"
    << "set ylabel " << gp_quote(ylabel) << " noenhanced\n"
    << "set logscale xy\n"
    << "set xrange [" << num(x0) << ":" << num(x1) << "]\n"
    << "set yrange [" << num(y0) << ":" << num(y1) << "]\n"
    << "set format x '%g'\n"
    << (many_decades ? "set format y pow10_format\n" : "set format y '%g'\n")
    << "set grid xtics ytics mxtics mytics lc rgb '#d8d8d8' lw 1, lc rgb '#efefef' lw 1\n"
    << "set key outside right top vertical Left reverse noenhanced samplen 3 spacing 1.05\n";
  for (size_t b = 0; b < plotted.size(); ++b)
    s << "set style line " << b + 1 << " lc rgb '" << kColours[b % kColours.size()]
      << "' lw 1.6 pt " << kPointTypes[b % kPointTypes.size()] << " ps 1.1\n";
  s << "XA = " << num(xa) << "\nYA = " << num(ya) << "\n";
  const std::string data_name = data_file.filename().string();
  std::vector<std::string> items;
  for (size_t b = 0; b < plotted.size(); ++b)
    items.push_back(gp_quote(data_name) + " index " + std::to_string(b) +
                    " using 1:2 with linespoints ls " + std::to_string(b + 1) + " title " +
                    gp_quote(series[plotted[b].index].label));
  static constexpr std::array<const char*, 4> kRefColours = {"#222222", "#555555", "#777777",
                                                             "#3a3a70"};
  static constexpr std::array<int, 4> kRefDash = {2, 4, 5, 6};
  for (size_t r = 0; r < reference_slopes.size(); ++r) {
    const double p = reference_slopes[r];
    items.push_back("YA * (x / XA)**(-(" + num(p) + ")) with lines dt " +
                    std::to_string(kRefDash[r % kRefDash.size()]) + " lw 1.6 lc rgb '" +
                    kRefColours[r % kRefColours.size()] + "' title " +
                    gp_quote("O(NFE^-" + short_num(p) + ")"));
  }
  if (draw_floor)
    items.push_back(num(floor) + " with lines dt 3 lw 2 lc rgb '#000000' title " +
                    gp_quote("reference floor"));
  s << "set samples 400\nplot ";
  for (size_t k = 0; k < items.size(); ++k) s << (k ? ", \\\n     " : "") << items[k];
  s << "\nunset output\n";
  write_file(files.script, s.str());

  std::string notes;
  if (skipped > 0)
    notes += "; skipped " + std::to_string(skipped) + " points with non-positive or non-finite x/y";
  if (!empty.empty()) {
    notes += "; left out series without plottable points:";
    for (const auto& l : empty) notes += " '" + l + "'";
  }
  return render(files, notes);
}

}  // namespace sdekit
