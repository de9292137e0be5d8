#include "apps/plot.hpp"

#include <stb/stb_image_write.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace sdekit {

namespace {

namespace fs = std::filesystem;

std::string shape_str(at::IntArrayRef sizes) {
  std::ostringstream os;
  os << sizes;
  return os.str();
}

std::string num(double v) {
  std::ostringstream os;
  os << std::setprecision(std::numeric_limits<double>::max_digits10) << v;
  return os.str();
}

std::string short_num(double v) {
  std::ostringstream os;
  os << std::setprecision(6) << v;
  return os.str();
}

// A gnuplot single-quoted string: no escapes inside, a quote is written twice. Line breaks
// would end the command, so they become spaces.
std::string gp_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "''";
    else if (c == '\n' || c == '\r')
      out += ' ';
    else
      out += c;
  }
  return out + "'";
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

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

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error("cannot write " + path.string());
  f << text;
  f.close();
  if (!f) throw std::runtime_error("cannot write " + path.string());
}

// The first executable regular file named gnuplot on PATH, or "" when there is none.
std::string find_gnuplot() {
  const char* env = std::getenv("PATH");
  const std::string path = env ? env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string folder = path.substr(start, end - start);
    if (folder.empty()) folder = ".";
    const std::string candidate = folder + "/gnuplot";
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    start = end + 1;
  }
  return "";
}

// Opens the script: terminal (pngcairo when this gnuplot has it, else libgd's png), output.
// libgd's png draws no enhanced text, so the script's power-of-ten tic format and subscripts come
// from variables set with the terminal.
std::string script_preamble(const PlotFiles& files, int width, int height) {
  std::ostringstream s;
  s << "# Render from this folder: gnuplot " << files.stem << ".gp  (writes " << files.stem
    << ".png)\n"
    << "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
    << "  set terminal pngcairo size " << width << "," << height
    << " enhanced font 'sans,10' linewidth 1\n"
    << "  pow10_format = '10^{%L}'; x1_label = 'x_1'; x2_label = 'x_2'\n"
    << "} else {\n"
    << "  set terminal png size " << width << "," << height << " truecolor medium\n"
    << "  pow10_format = '1e%L'; x1_label = 'x1'; x2_label = 'x2'\n"
    << "}\n"
    << "print 'terminal: ' . GPVAL_TERM\n"
    << "set output " << gp_quote(files.png.filename().string()) << "\n"
    << "set encoding utf8\n";
  return s.str();
}

// Runs gnuplot on the script from the PNG's folder, or explains how to when it is not installed.
PlotResult render(const PlotFiles& files, const std::string& notes) {
  PlotResult r;
  r.png = files.png.string();
  r.script = files.script.string();
  const std::string gnuplot = find_gnuplot();
  if (gnuplot.empty()) {
    r.message = "gnuplot is not installed: wrote " + r.script +
                " and its data; install the Debian package gnuplot-nox and run `gnuplot " +
                files.script.filename().string() + "` in " + files.dir.string() + " to render " +
                r.png + notes;
    return r;
  }
  std::error_code ec;
  fs::remove(files.png, ec);
  const std::string cmd = "cd " + shell_quote(files.dir.string()) + " && exec " +
                          shell_quote(gnuplot) + " " +
                          shell_quote(files.script.filename().string()) + " 2>&1";
  std::string output;
  {
    std::FILE* pipe = ::popen(cmd.c_str(), "r");
    if (!pipe) throw std::runtime_error("cannot start gnuplot for " + r.script);
    std::array<char, 4096> buf{};
    size_t got;
    while ((got = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) output.append(buf.data(), got);
    const int status = ::pclose(pipe);
    // Keep gnuplot's messages, less the terminal line the script prints.
    std::string terminal, messages;
    std::istringstream lines(output);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("terminal: ", 0) == 0)
        terminal = line.substr(10);
      else
        messages += line + "\n";
    }
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
      throw std::runtime_error("gnuplot failed on " + r.script + ":\n" + messages);
    if (!fs::exists(files.png, ec))
      throw std::runtime_error("gnuplot ran " + r.script + " but wrote no " + r.png + ":\n" +
                               messages);
    r.rendered = true;
    r.message = "wrote " + r.png + " (gnuplot, terminal " +
                (terminal.empty() ? std::string("?") : terminal) + "; script " + r.script + ")" +
                notes;
  }
  return r;
}

// 70 distinct colour / point-type pairs: colour i % 10, point type i % 7.
constexpr std::array<const char*, 10> kColours = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                                  "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                                  "#bcbd22", "#17becf"};
constexpr std::array<int, 7> kPointTypes = {7, 5, 9, 11, 13, 6, 4};

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t i = static_cast<size_t>(std::floor(pos));
  const size_t j = std::min(i + 1, v.size() - 1);
  const double f = pos - static_cast<double>(i);
  return v[i] + f * (v[j] - v[i]);
}

// log10 range [lo, hi] padded by a share of its width (at least min_pad decades).
std::pair<double, double> log_range(double lo, double hi, double share, double min_pad) {
  const double a = std::log10(lo), b = std::log10(hi);
  const double pad = std::max(share * (b - a), min_pad);
  return {std::pow(10.0, a - pad), std::pow(10.0, b + pad)};
}

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

// ------------------------------------------------------------------------------------------

void write_image_grid_png(const std::string& png_path, const at::Tensor& images, int columns,
                          int padding, double lo, double hi) {
  const bool shape_ok = images.defined() && images.dim() == 4 && images.size(0) >= 1 &&
                        (images.size(1) == 1 || images.size(1) == 3) && images.size(2) >= 1 &&
                        images.size(3) >= 1;
  if (!shape_ok)
    throw std::invalid_argument(
        "write_image_grid_png: images must have shape [n, C, H, W] with n, H, W >= 1 and C = 1 "
        "or 3, got " +
        (images.defined() ? shape_str(images.sizes()) : std::string("an undefined tensor")));
  if (images.is_complex())
    throw std::invalid_argument("write_image_grid_png: images must be real, got complex");
  if (columns < 0 || padding < 0)
    throw std::invalid_argument("write_image_grid_png: columns and padding must be >= 0, got " +
                                std::to_string(columns) + " and " + std::to_string(padding));
  if (!std::isfinite(lo) || !std::isfinite(hi) || !(lo < hi))
    throw std::invalid_argument("write_image_grid_png: need finite lo < hi, got " + num(lo) + ", " +
                                num(hi));

  const at::Tensor img = images.detach().to(at::kCPU, at::kDouble).contiguous();
  if (at::isnan(img).any().item<bool>())
    throw std::invalid_argument("write_image_grid_png: images contain NaN");
  const int64_t n = img.size(0), C = img.size(1), H = img.size(2), W = img.size(3);
  int64_t cols =
      columns == 0 ? static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n)))) : columns;
  cols = std::clamp<int64_t>(cols, 1, n);
  const int64_t rows = (n + cols - 1) / cols;
  const int64_t width = cols * W + (cols - 1) * padding;
  const int64_t height = rows * H + (rows - 1) * padding;
  if (width > INT_MAX / C || height > INT_MAX / (width * C))
    throw std::invalid_argument("write_image_grid_png: a " + std::to_string(width) + " x " +
                                std::to_string(height) + " image is too large");

  std::vector<unsigned char> pixels(static_cast<size_t>(width * height * C), 255);
  const double* v = img.data_ptr<double>();
  const double scale = 255.0 / (hi - lo);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t top = (k / cols) * (H + padding), left = (k % cols) * (W + padding);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          const double t = std::floor((v[((k * C + c) * H + y) * W + x] - lo) * scale + 0.5);
          pixels[static_cast<size_t>(((top + y) * width + left + x) * C + c)] =
              static_cast<unsigned char>(std::clamp(t, 0.0, 255.0));
        }
  }

  const fs::path path(png_path);
  if (png_path.empty()) throw std::invalid_argument("write_image_grid_png: the path is empty");
  if (path.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    if (ec) throw std::runtime_error("cannot write " + png_path + ": " + ec.message());
  }
  const int ok = stbi_write_png(png_path.c_str(), static_cast<int>(width), static_cast<int>(height),
                                static_cast<int>(C), pixels.data(), static_cast<int>(width * C));
  if (!ok) throw std::runtime_error("cannot write " + png_path);
}

void write_image_grid_png(const std::string& png_path, const at::Tensor& rows,
                          const std::vector<int64_t>& image_shape, int columns, int padding,
                          double lo, double hi) {
  const bool shape_ok =
      (image_shape.size() == 2 || image_shape.size() == 3) &&
      std::all_of(image_shape.begin(), image_shape.end(), [](int64_t d) { return d >= 1; }) &&
      (image_shape.size() == 2 || image_shape[0] == 1 || image_shape[0] == 3);
  if (!shape_ok)
    throw std::invalid_argument(
        "write_image_grid_png: image_shape must be {C, H, W} with C = 1 or 3, or {H, W}, got " +
        shape_str(image_shape));
  int64_t size = 1;
  for (int64_t d : image_shape) size *= d;
  if (!rows.defined() || rows.dim() != 2 || rows.size(0) < 1 || rows.size(1) != size)
    throw std::invalid_argument(
        "write_image_grid_png: rows must have shape [n, " + std::to_string(size) +
        "] for image_shape " + shape_str(image_shape) + ", got " +
        (rows.defined() ? shape_str(rows.sizes()) : std::string("an undefined tensor")));
  std::vector<int64_t> shape{rows.size(0)};
  if (image_shape.size() == 2) shape.push_back(1);
  shape.insert(shape.end(), image_shape.begin(), image_shape.end());
  write_image_grid_png(png_path, rows.reshape(shape), columns, padding, lo, hi);
}

}  // namespace sdekit
