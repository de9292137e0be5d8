#include "experiments/results_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <ctime>
#include <map>
#include <mutex>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include <sstream>
#include <stdexcept>
#include "experiments/detail/spec_fields.hpp"

namespace sdekit {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json parse_object(const std::string& text, const std::string& what) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse errors, and number overflow (out_of_range)
    throw std::invalid_argument(what + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw std::invalid_argument(what + ": expected a JSON object");
  return j;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument(path + ": cannot open for reading");
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// Writes `text` to path through a temporary file and a rename, so a reader never sees half.
void write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::invalid_argument(tmp + ": cannot open for writing");
    out << text;
    out.flush();
    if (!out) throw std::runtime_error(tmp + ": write failed");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec)
    throw std::runtime_error(path + ": cannot rename from " + tmp + " (" + ec.message() + ")");
}

// The folders this process has locked: a second store on the same folder in the same process
// shares the lock (flock conflicts between two descriptions even within one process).
struct HeldLock {
  int fd = -1;
  int count = 0;
};
std::mutex held_mutex;
std::map<std::string, HeldLock>& held_locks() {
  static std::map<std::string, HeldLock> held;
  return held;
}

std::string lock_key(const std::string& dir) {
  std::error_code ec;
  const fs::path p = fs::canonical(dir, ec);
  return ec ? fs::absolute(dir).lexically_normal().string() : p.string();
}

// Takes the folder's advisory lock, held until the descriptor is closed (also when the process
// dies, so a killed run never leaves the folder locked).
int take_folder_lock(const std::string& dir) {
  const std::string lock_path = (fs::path(dir) / ".lock").string();
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    throw std::invalid_argument("output folder '" + dir + "': cannot open its lock file " +
                                lock_path + " (" + std::strerror(errno) + ")");
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string holder;
    char buf[256];
    const ssize_t got = ::pread(fd, buf, sizeof buf - 1, 0);
    if (got > 0) holder.assign(buf, static_cast<std::size_t>(got));
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    ::close(fd);
    if (err == EWOULDBLOCK)
      throw std::invalid_argument("output folder '" + dir + "' is in use by another run (" +
                                  (holder.empty() ? std::string("holder unknown") : holder) +
                                  "); wait for it to finish or use another output folder");
    throw std::invalid_argument("output folder '" + dir + "': cannot lock " + lock_path + " (" +
                                std::strerror(err) + ")");
  }
  const std::string me = "pid " + std::to_string(::getpid()) + ", started " +
                         std::to_string(static_cast<long long>(::time(nullptr))) + " (Unix time)\n";
  if (::ftruncate(fd, 0) == 0) {
    const ssize_t w = ::pwrite(fd, me.data(), me.size(), 0);
    (void)w;  // the record is informative only
  }
  return fd;
}

int lock_folder(const std::string& dir) {
  const std::lock_guard<std::mutex> guard(held_mutex);
  HeldLock& h = held_locks()[lock_key(dir)];
  if (h.count == 0) {
    try {
      h.fd = take_folder_lock(dir);
    } catch (...) {
      held_locks().erase(lock_key(dir));
      throw;
    }
  }
  ++h.count;
  return h.fd;
}

void unlock_folder(int fd) {
  const std::lock_guard<std::mutex> guard(held_mutex);
  for (auto it = held_locks().begin(); it != held_locks().end(); ++it)
    if (it->second.fd == fd) {
      if (--it->second.count == 0) {
        ::close(fd);
        held_locks().erase(it);
      }
      return;
    }
}

// Removes what interrupted writes left behind: files whose names contain ".tmp".
void remove_temporaries(const std::string& dir) {
  for (const fs::path& sub : {fs::path(dir), fs::path(dir) / "stats"}) {
    std::error_code ec;
    if (!fs::is_directory(sub, ec)) continue;
    for (const auto& e : fs::directory_iterator(sub, ec))
      if (e.is_regular_file(ec) && e.path().filename().string().find(".tmp") != std::string::npos)
        fs::remove(e.path(), ec);
  }
}

}  // namespace

ResultsStore::LockFd::~LockFd() {
  if (fd >= 0) unlock_folder(fd);
}

std::vector<std::string> json_object_diff(const std::string& stored, const std::string& now) {
  const json a = parse_object(stored, "stored spec"), b = parse_object(now, "new spec");
  std::vector<std::string> out;
  for (auto it = a.begin(); it != a.end(); ++it) {
    const auto jt = b.find(it.key());
    if (jt == b.end())
      out.push_back(it.key() + ": stored " + detail::json_preview(it.value()) + ", now (absent)");
    else if (*jt != it.value())
      out.push_back(it.key() + ": stored " + detail::json_preview(it.value()) + ", now " +
                    detail::json_preview(*jt));
  }
  for (auto it = b.begin(); it != b.end(); ++it)
    if (!a.contains(it.key()))
      out.push_back(it.key() + ": stored (absent), now " + detail::json_preview(it.value()));
  return out;
}

ResultsStore::ResultsStore(std::string dir, const std::string& spec_json, bool fresh,
                           const std::vector<std::string>& derived)
    : dir_(std::move(dir)) {
  parse_object(spec_json, "spec");
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec || !fs::is_directory(dir_))
    throw std::invalid_argument("output folder '" + dir_ + "': cannot create it" +
                                (ec ? " (" + ec.message() + ")" : std::string()));
  lock_.fd = lock_folder(dir_);
  remove_temporaries(dir_);
  const std::string spec_path = path("spec.json"), results_path = path("results.jsonl");
  if (fresh) {
    std::vector<std::string> names = {"spec.json", "results.jsonl"};
    names.insert(names.end(), derived.begin(), derived.end());
    for (const auto& n : names) fs::remove(path(n), ec);
  }
  if (fs::exists(spec_path)) {
    const std::vector<std::string> diff = json_object_diff(read_file(spec_path), spec_json);
    if (!diff.empty()) {
      std::string msg = "output folder '" + dir_ + "' holds a study with another spec (" +
                        spec_path + "); fields that differ:";
      for (const auto& d : diff) msg += "\n  " + d;
      msg += "\nuse the same spec to resume, another output folder, or --fresh to start over";
      throw std::invalid_argument(msg);
    }
  } else {
    // A results file without its spec cannot be trusted to belong to this study.
    if (fs::exists(results_path))
      throw std::invalid_argument(results_path + " exists without spec.json; remove it or use " +
                                  "--fresh");
    write_atomically(spec_path, parse_object(spec_json, "spec").dump(2) + "\n");
  }

  if (fs::exists(results_path)) {
    const std::string text = read_file(results_path);
    std::size_t pos = 0, line_no = 0, good_end = 0;
    while (pos < text.size()) {
      const std::size_t nl = text.find('\n', pos);
      ++line_no;
      if (nl == std::string::npos) {  // cut short by an interrupt: drop it
        dropped_partial_ = true;
        break;
      }
      const std::string line = text.substr(pos, nl - pos);
      pos = nl + 1;
      if (line.empty()) {
        good_end = pos;
        continue;
      }
      const std::string where = results_path + " line " + std::to_string(line_no);
      const json j = parse_object(line, where);
      if (!j.contains("cell") || !j["cell"].is_string())
        throw std::invalid_argument(where + ": no string field \"cell\"");
      const std::string key = j["cell"].get<std::string>();
      if (!keys_.insert(key).second)
        throw std::invalid_argument(where + ": cell '" + key + "' appears twice");
      lines_.push_back(line);
      good_end = pos;
    }
    if (dropped_partial_) fs::resize_file(results_path, good_end, ec);
    if (ec) throw std::runtime_error(results_path + ": cannot drop the partial last line");
  }
  resumed_ = lines_.size();
}

std::string ResultsStore::path(const std::string& name) const {
  return (fs::path(dir_) / name).string();
}

void ResultsStore::append(const std::string& key, const std::string& json_object) {
  const json j = parse_object(json_object, "cell '" + key + "'");
  if (!j.contains("cell") || j["cell"] != key)
    throw std::invalid_argument("cell '" + key + "': its \"cell\" field must be the key");
  if (keys_.count(key)) throw std::invalid_argument("cell '" + key + "' is already stored");
  const std::string line = j.dump() + "\n";
  const std::string results_path = path("results.jsonl");
  const int fd = ::open(results_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    throw std::runtime_error(results_path + ": cannot open for appending (" + std::strerror(errno) +
                             ")");
  const ssize_t written = ::write(fd, line.data(), line.size());
  const int err = errno;
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (written != static_cast<ssize_t>(line.size()) || !synced)
    throw std::runtime_error(results_path + ": write failed (" + std::strerror(err) + ")");
  lines_.push_back(j.dump());
  keys_.insert(key);
}

}  // namespace sdekit
