#include "apps/cli_common.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <stdexcept>

namespace sdekit::cli {

// The first line of a message, trimmed (LibTorch and CLI11 append context on further lines).
std::string one_line(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
  return line;
}

// An error message as printed: each line at most 300 characters and at most 30 lines (values
// echoed from hostile input can be megabytes long).
std::string clipped(const std::string& text) {
  std::istringstream in(text);
  std::string out;
  int lines = 0;
  for (std::string line; std::getline(in, line); ++lines) {
    if (lines == 30) {
      out += "\n  ...";
      break;
    }
    for (char& c : line)
      if (static_cast<unsigned char>(c) < 0x20 && c != '\t') c = '?';  // no control characters
    if (line.size() > 300)
      line =
          line.substr(0, 300) + "... (" + std::to_string(line.size() - 300) + " more characters)";
    out += (lines ? "\n" : "") + line;
  }
  return out;
}

std::string fmt_shape(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

std::string fmt(double v, int prec) {
  std::ostringstream os;
  os << std::setprecision(prec) << v;
  return os.str();
}

void check_count(const std::string& flag, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo)
    throw std::invalid_argument(flag + " must be >= " + std::to_string(lo) + ", got " +
                                std::to_string(v));
  if (v > hi)
    throw std::invalid_argument(flag + " must be <= " + std::to_string(hi) + ", got " +
                                std::to_string(v));
}

// "cpu", "cuda" or "cuda:K", and CUDA only where LibTorch has it.
void check_device(const std::string& device) {
  const bool cuda = device == "cuda" || device.rfind("cuda:", 0) == 0;
  if (device != "cpu" && !cuda)
    throw std::invalid_argument("--device: unknown device '" + device +
                                "'; valid: cpu, cuda, cuda:K");
  if (cuda && !at::hasCUDA())
    throw std::invalid_argument("--device " + device +
                                ": CUDA is not available (this LibTorch has no CUDA, or no GPU is "
                                "visible)");
}

// An output file is checked before any work without creating it: its folder must exist and be
// writable, and an existing file must be a writable regular file.
void check_output_file(const std::string& flag, const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::error_code ec;
  if (fs::is_directory(p, ec))
    throw std::invalid_argument(flag + " '" + path + "': is a directory, not a file");
  if (!fs::is_directory(dir, ec))
    throw std::invalid_argument(flag + " '" + path + "': cannot open for writing (the folder '" +
                                dir.string() + "' does not exist)");
  if (::access(dir.c_str(), W_OK) != 0 || (fs::exists(p, ec) && ::access(p.c_str(), W_OK) != 0))
    throw std::invalid_argument(flag + " '" + path + "': cannot open for writing (permission)");
}

ProgressLine::ProgressLine(std::ostream& err, bool quiet)
    : err_(err), on_(!quiet && &err == &std::cerr && ::isatty(STDERR_FILENO)) {}

namespace {
std::string clock_text(double s) {
  const long t = std::lround(std::max(0.0, s));
  std::ostringstream os;
  os << t / 60 << ":" << std::setw(2) << std::setfill('0') << t % 60;
  return os.str();
}
}  // namespace

void ProgressLine::update(std::size_t done, std::size_t total, const std::string& what,
                          double elapsed, double eta) {
  if (!on_) return;
  std::ostringstream os;
  os << "\r[" << done << "/" << total << "] " << what << "  " << clock_text(elapsed) << " elapsed";
  if (eta >= 0) os << ", ETA " << clock_text(eta);
  std::string line = os.str();
  if (line.size() < width_) line += std::string(width_ - line.size(), ' ');
  width_ = line.size();
  err_ << line << std::flush;
  shown_ = true;
}

void ProgressLine::finish() {
  if (on_ && shown_) err_ << "\r" << std::string(width_, ' ') << "\r" << std::flush;
  shown_ = false;
}

std::string sde_with_shift(const std::string& sde, double shift, bool given) {
  if (!given) return sde;
  if (sde != "flow")
    throw std::invalid_argument("--shift: only --sde flow has a time shift, got --sde " + sde +
                                " (or give flow:shift=S as the SDE)");
  if (!(shift > 0.0) || !std::isfinite(shift))
    throw std::invalid_argument("--shift: must be > 0, got " + fmt(shift, 6));
  if (shift == 1.0) return sde;
  std::ostringstream os;
  os << "flow:shift=" << shift;
  return os.str();
}

}  // namespace sdekit::cli
