#include "experiments/results_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace sdekit {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json parse_object(const std::string& text, const std::string& what) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
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

}  // namespace

std::vector<std::string> json_object_diff(const std::string& stored, const std::string& now) {
  const json a = parse_object(stored, "stored spec"), b = parse_object(now, "new spec");
  std::vector<std::string> out;
  for (auto it = a.begin(); it != a.end(); ++it) {
    const auto jt = b.find(it.key());
    if (jt == b.end())
      out.push_back(it.key() + ": stored " + it.value().dump() + ", now (absent)");
    else if (*jt != it.value())
      out.push_back(it.key() + ": stored " + it.value().dump() + ", now " + jt->dump());
  }
  for (auto it = b.begin(); it != b.end(); ++it)
    if (!a.contains(it.key()))
      out.push_back(it.key() + ": stored (absent), now " + it.value().dump());
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
