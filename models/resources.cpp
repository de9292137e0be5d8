#include "models/resources.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace sdekit {

namespace {

// The first number of a one-line file such as memory.max ("max" or missing: 0).
uint64_t read_number(const char* path) {
  std::ifstream in(path);
  std::string s;
  if (!(in >> s) || s == "max") return 0;
  try {
    return std::stoull(s);
  } catch (const std::exception&) {
    return 0;
  }
}

std::string gib(double bytes) {
  std::ostringstream os;
  os.precision(bytes < 1e9 ? 2 : 3);
  os << bytes / double(1ull << 30) << " GiB";
  return os.str();
}

}  // namespace

uint64_t available_memory_bytes() {
  uint64_t avail = 0;
  std::ifstream in("/proc/meminfo");
  for (std::string key; in >> key;) {
    uint64_t kb = 0;
    std::string unit;
    in >> kb >> unit;
    if (key == "MemAvailable:") {
      avail = kb * 1024;
      break;
    }
  }
  if (avail == 0) {
    const long pages = ::sysconf(_SC_AVPHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) avail = uint64_t(pages) * uint64_t(page);
  }
  const uint64_t limit = read_number("/sys/fs/cgroup/memory.max");
  if (limit > 0) {
    const uint64_t used = read_number("/sys/fs/cgroup/memory.current");
    const uint64_t left = limit > used ? limit - used : 0;
    avail = avail == 0 ? left : std::min(avail, left);
  }
  return avail;
}

void require_memory(const std::string& what, double bytes) {
  const uint64_t avail = available_memory_bytes();
  if (avail == 0) return;
  if (!(bytes <= double(avail)))
    throw std::invalid_argument(what + ": needs about " + gib(bytes) +
                                " of memory, more than the " + gib(double(avail)) + " available");
}

std::string read_text_file(const std::string& path, const std::string& what,
                           std::uintmax_t max_bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st))
    throw std::invalid_argument(what + " '" + path + "': cannot open (no such file)");
  if (fs::is_directory(st))
    throw std::invalid_argument(what + " '" + path + "': is a directory, not a file");
  if (!fs::is_regular_file(st))
    throw std::invalid_argument(what + " '" + path + "': not a regular file");
  const std::uintmax_t size = fs::file_size(path, ec);
  if (!ec && size > max_bytes)
    throw std::invalid_argument(what + " '" + path + "': " + std::to_string(size) +
                                " bytes, more than the " + std::to_string(max_bytes) +
                                " a text file may have");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument(what + " '" + path + "': cannot open for reading");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw std::invalid_argument(what + " '" + path + "': read failed");
  return text.str();
}

}  // namespace sdekit
