// Scatter plots of 2-D samples over the contours of a log-density (apps/plot.hpp).
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

namespace {
using namespace plot_detail;

using GridEvaluator = std::function<void(const std::vector<double>& xs,
                                         const std::vector<double>& ys, std::vector<double>& out)>;

void check_samples(const at::Tensor& samples) {
  if (!samples.defined() || samples.dim() != 2 || samples.size(1) != 2 || samples.size(0) < 1)
    throw std::invalid_argument(
        "plot_scatter_density: samples must have shape [n, 2] with n >= 1, got " +
        (samples.defined() ? shape_str(samples.sizes()) : std::string("an undefined tensor")));
  if (samples.is_complex())
    throw std::invalid_argument("plot_scatter_density: samples must be real, got complex");
}

PlotResult scatter_density(const std::string& png_path, const std::string& title,
                           const at::Tensor& samples, const GridEvaluator& evaluate, int grid) {
  check_samples(samples);
  if (grid < 2)
    throw std::invalid_argument("plot_scatter_density: grid must be >= 2, got " +
                                std::to_string(grid));
  const at::Tensor pts = samples.detach().to(at::kCPU, at::kDouble).contiguous();
  const double* p = pts.data_ptr<double>();
  const int64_t n = pts.size(0);
  std::vector<double> xs, ys;
  xs.reserve(static_cast<size_t>(n));
  ys.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double x = p[2 * i], y = p[2 * i + 1];
    if (std::isfinite(x) && std::isfinite(y)) {
      xs.push_back(x);
      ys.push_back(y);
    }
  }
  if (xs.empty())
    throw std::invalid_argument("plot_scatter_density: none of the " + std::to_string(n) +
                                " samples is finite");
  const int64_t skipped = n - static_cast<int64_t>(xs.size());

  // Plot range: central 99% of the samples plus a margin.
  auto axis_range = [](const std::vector<double>& v) {
    double lo = quantile(v, 0.005), hi = quantile(v, 0.995);
    double span = hi - lo;
    if (!(span > 0)) span = std::max(1.0, std::abs(lo));
    const double mid = 0.5 * (lo + hi);
    lo = std::min(lo, mid - 0.5 * span);
    hi = std::max(hi, mid + 0.5 * span);
    return std::make_pair(lo - 0.1 * span, hi + 0.1 * span);
  };
  const auto [x0, x1] = axis_range(xs);
  const auto [y0, y1] = axis_range(ys);

  // Log-density on the lattice, x-major (one gnuplot grid block per x).
  const size_t g = static_cast<size_t>(grid);
  std::vector<double> gx(g * g), gy(g * g), lp;
  for (size_t i = 0; i < g; ++i)
    for (size_t j = 0; j < g; ++j) {
      gx[i * g + j] = x0 + (x1 - x0) * static_cast<double>(i) / static_cast<double>(g - 1);
      gy[i * g + j] = y0 + (y1 - y0) * static_cast<double>(j) / static_cast<double>(g - 1);
    }
  evaluate(gx, gy, lp);
  if (lp.size() != g * g)
    throw std::logic_error("plot_scatter_density: log-density evaluator returned " +
                           std::to_string(lp.size()) + " values for " + std::to_string(g * g));
  double lmax = -std::numeric_limits<double>::infinity();
  double lmin = std::numeric_limits<double>::infinity();
  for (double v : lp)
    if (std::isfinite(v)) {
      lmax = std::max(lmax, v);
      lmin = std::min(lmin, v);
    }
  const bool have_density = std::isfinite(lmax);
  std::vector<double> levels;
  if (have_density) {
    const double range = lmax - lmin;
    for (int k = 8; k >= 1; --k)
      levels.push_back(range < 16 ? lmin + range * k / 9.0 : lmax - 0.25 * k * k);
    std::sort(levels.begin(), levels.end());
    const double fill = std::min(lmin, lmax - 32) - 1;
    for (double& v : lp)
      if (!std::isfinite(v)) v = fill;
  }

  PlotFiles files(png_path);
  const fs::path samples_file = files.sibling("_samples.dat");
  const fs::path density_file = files.sibling("_density.dat");
  {
    std::ostringstream d;
    d << "# samples: x y (" << xs.size() << " finite rows)\n";
    for (size_t i = 0; i < xs.size(); ++i) d << num(xs[i]) << " " << num(ys[i]) << "\n";
    write_file(samples_file, d.str());
  }
  {
    std::ostringstream d;
    d << "# log-density on a " << grid << " x " << grid << " grid: x y logp\n";
    for (size_t i = 0; i < g; ++i) {
      for (size_t j = 0; j < g; ++j)
        d << num(gx[i * g + j]) << " " << num(gy[i * g + j]) << " "
          << (have_density ? num(lp[i * g + j]) : std::string("NaN")) << "\n";
      d << "\n";
    }
    write_file(density_file, d.str());
  }

  const double sx = x1 - x0, sy = y1 - y0;
  const bool equal_axes = sx <= 3 * sy && sy <= 3 * sx;
  const size_t shown = xs.size();
  // Points fade as they get denser: gnuplot colours are #AARRGGBB with AA the transparency.
  const char* point_colour = shown <= 300 ? "#30203040" : shown <= 3000 ? "#70203040" : "#a0203040";

  std::ostringstream s;
  s << script_preamble(files, 800, 720);
  s << "set title " << gp_quote(title) << " noenhanced\n"
    << "set xlabel x1_label\nset ylabel x2_label\n"
    << "set xrange [" << num(x0) << ":" << num(x1) << "]\n"
    << "set yrange [" << num(y0) << ":" << num(y1) << "]\n"
    << (equal_axes ? "set size ratio -1\n" : "set size ratio 0.85\n")
    << "set key below horizontal noenhanced\n"
    << "set grid lc rgb '#e8e8e8'\n";
  const std::string density_name = density_file.filename().string();
  const std::string samples_name = samples_file.filename().string();
  if (have_density) {
    s << "set contour base\nunset surface\nset cntrparam linear\nset cntrparam levels discrete ";
    for (size_t k = 0; k < levels.size(); ++k) s << (k ? "," : "") << num(levels[k]);
    s << "\nset table $contours\n"
      << "splot " << gp_quote(density_name) << " using 1:2:3 with lines notitle\n"
      << "unset table\nunset contour\n"
      << "set palette defined (0 '#1b0c41', 1 '#4a0c6b', 2 '#781c6d', 3 '#a52c60', 4 '#cf4446', "
         "5 '#ed6925', 6 '#fb9b06')\n"
      << "set cbrange [" << num(levels.front()) << ":" << num(levels.back()) << "]\n"
      << "set cblabel 'log density'\n"
      << "plot $contours using 1:2:3 with lines lw 1.6 lc palette title 'log-density contours', "
         "\\\n"
      << "     " << gp_quote(samples_name) << " using 1:2 with points pt 7 ps 0.45 lc rgb '"
      << point_colour << "' title " << gp_quote("samples (n = " + std::to_string(shown) + ")")
      << "\n";
  } else {
    s << "plot " << gp_quote(samples_name) << " using 1:2 with points pt 7 ps 0.45 lc rgb '"
      << point_colour << "' title " << gp_quote("samples (n = " + std::to_string(shown) + ")")
      << "\n";
  }
  s << "unset output\n";
  write_file(files.script, s.str());

  std::string notes;
  if (skipped > 0) notes += "; skipped " + std::to_string(skipped) + " non-finite samples";
  if (!have_density) notes += "; the log-density is nowhere finite on the grid: no contours";
  return render(files, notes);
}

}  // namespace

PlotResult plot_scatter_density(const std::string& png_path, const std::string& title,
                                const at::Tensor& samples,
                                const std::function<double(double, double)>& log_density,
                                int grid) {
  if (!log_density) throw std::invalid_argument("plot_scatter_density: empty log_density");
  return scatter_density(
      png_path, title, samples,
      [&](const std::vector<double>& xs, const std::vector<double>& ys, std::vector<double>& out) {
        out.resize(xs.size());
        for (size_t i = 0; i < xs.size(); ++i) out[i] = log_density(xs[i], ys[i]);
      },
      grid);
}

PlotResult plot_scatter_density(const std::string& png_path, const std::string& title,
                                const at::Tensor& samples, const GaussianMixture& mixture,
                                double alpha, double sigma, int grid) {
  if (mixture.dim() != 2)
    throw std::invalid_argument("plot_scatter_density: the mixture must be 2-dimensional, got " +
                                std::to_string(mixture.dim()) + " dimensions");
  if (!std::isfinite(alpha) || !std::isfinite(sigma) || sigma < 0)
    throw std::invalid_argument("plot_scatter_density: need finite alpha and sigma >= 0, got " +
                                num(alpha) + ", " + num(sigma));
  return scatter_density(
      png_path, title, samples,
      [&](const std::vector<double>& xs, const std::vector<double>& ys, std::vector<double>& out) {
        const int64_t m = static_cast<int64_t>(xs.size());
        at::Tensor pts = at::empty({m, 2}, at::kDouble);
        double* q = pts.data_ptr<double>();
        for (int64_t i = 0; i < m; ++i) {
          q[2 * i] = xs[static_cast<size_t>(i)];
          q[2 * i + 1] = ys[static_cast<size_t>(i)];
        }
        at::NoGradGuard no_grad;
        const at::Tensor lp = mixture.log_prob(pts, alpha, sigma).to(at::kDouble).contiguous();
        const double* v = lp.data_ptr<double>();
        out.assign(v, v + lp.numel());
      },
      grid);
}

}  // namespace sdekit
