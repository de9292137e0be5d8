#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "apps/plot_detail.hpp"

namespace sdekit::plot_detail {

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

}  // namespace sdekit::plot_detail
