// sdekit_fuzz: mutation fuzzing of the file formats the sdekit command reads (.npy, .npz, mixture
// and spec JSON, gzip IDX, TorchScript zip archives). For each loader it writes valid seed inputs,
// derives mutants from them deterministically (--seed and the mutant's index fix every choice),
// and runs the command that reads each mutant through sdekit::run_cli in a forked child process.
// Each run is classified against the command's exit-code contract (0 success; 2 bad input with one
// line "error: ..."; 1 a failure while running):
//   ok        exit 0                      rejected  exit 2 with exactly one line "error: ..."
//   failure   exit 1 (a mutated input is bad input, so this is reported, fatal only with --strict)
//   crash     killed by a signal, or a sanitizer report
//   hang      still running after --timeout seconds (killed)
//   contract  any other exit code, or exit 2 with an empty or multi-line message
// See README.md in this folder for how to run it long, keep a corpus and replay it.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zip.h>
#include <zlib.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "apps/cli.hpp"
#include "experiments/frechet.hpp"
#include "experiments/npy_io.hpp"
#include "experiments/stats_io.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using Rng = std::mt19937_64;  // fully specified, so mutants are the same on every platform
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kEscaped = 125;  // child exit code: an exception escaped run_cli
const char* const kClasses[] = {"ok", "rejected", "failure", "crash", "hang", "contract"};

struct Options {
  std::string loader = "all", work, corpus, replay;
  long count = 100, index = -1, mem_mb = 4096;
  uint64_t seed = 1;
  double timeout = 20;
  int jobs = 1;
  bool strict = false;
};

// ---------------------------------------------------------------------------------------------
// Small helpers

uint64_t below(Rng& r, uint64_t n) {
  return n == 0 ? 0 : r() % n;
}
template <class C>
const auto& pick(Rng& r, const C& c) {
  return *(std::begin(c) + below(r, std::size(c)));
}
template <class T>
T pick(Rng& r, std::initializer_list<T> l) {
  return *(l.begin() + below(r, l.size()));
}
// "a;b;c" -> {"a", "b", "c"}: the compact way to write the lists of values below.
std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out(1);
  for (char c : s)
    if (c == ';')
      out.emplace_back();
    else
      out.back().push_back(c);
  return out;
}
uint32_t fnv1a(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}
void write_file(const fs::path& p, const std::string& b) {
  std::ofstream(p, std::ios::binary) << b;
}
std::string be32(uint32_t v) {
  return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}
std::string hex(uint64_t v) {
  std::ostringstream s;
  s << "0x" << std::hex << v;
  return s.str();
}
std::string gzip(const std::string& raw, const fs::path& file) {
  gzFile g = gzopen(file.c_str(), "wb");
  if (g == nullptr) throw std::runtime_error("cannot write " + file.string());
  if (!raw.empty()) gzwrite(g, raw.data(), static_cast<unsigned>(raw.size()));
  gzclose(g);
  return read_file(file);
}

// ---------------------------------------------------------------------------------------------
// Mutators. Each changes `b` in place and returns a description of what it did.

const uint64_t kInteresting[] = {0,          1,          0x7f,        0x80,
                                 0xff,       0x7fff,     0xffff,      0x7fffffff,
                                 0x80000000, 0xffffffff, 0x100000001, 0x7fffffffffffffff,
                                 ~0ull,      1ull << 63, 1ull << 40};

// An offset biased towards the head and the tail, where headers and zip directories live.
size_t offset(Rng& r, size_t n) {
  const uint64_t k = below(r, 3);
  if (k == 0) return below(r, std::min<size_t>(n, 128));
  if (k == 1) return n - 1 - below(r, std::min<size_t>(n, 128));
  return below(r, n);
}

std::string mutate_bytes(std::string& b, Rng& r) {
  if (b.empty()) return b = std::string(1, '\0'), "insert 1 byte into an empty file";
  const size_t n = b.size(), at = offset(r, n), len = 1 + below(r, std::min<size_t>(n - at, 64));
  switch (below(r, 7)) {
    case 0: {
      const char x = char(1 + below(r, 255));
      b[at] ^= x;
      return "xor byte @" + std::to_string(at) + " with " + hex(uint8_t(x));
    }
    case 1: {
      const int bit = int(below(r, 8));
      b[at] ^= char(1 << bit);
      return "flip bit " + std::to_string(bit) + " @" + std::to_string(at);
    }
    case 2:
      b.resize(at);
      return "truncate to " + std::to_string(at) + " of " + std::to_string(n) + " bytes";
    case 3:
      b.erase(at, len);
      return "delete " + std::to_string(len) + " bytes @" + std::to_string(at);
    case 4: {
      std::string ins(len, '\0');
      for (auto& c : ins) c = char(r());
      b.insert(at, ins);
      return "insert " + std::to_string(len) + " random bytes @" + std::to_string(at);
    }
    case 5: {
      const size_t to = below(r, n + 1);
      b.insert(to, b.substr(at, len));
      return "duplicate " + std::to_string(len) + " bytes @" + std::to_string(at) + " to @" +
             std::to_string(to);
    }
    default: {
      const int width = 1 << below(r, 4);
      const bool big = below(r, 2) == 1;
      const uint64_t v = pick(r, kInteresting);
      const size_t o = n >= size_t(width) ? std::min(at, n - width) : 0;
      for (int i = 0; i < width && o + i < n; ++i)
        b[o + i] = char(v >> (8 * (big ? width - 1 - i : i)));
      return "set " + std::to_string(8 * width) + "-bit " + (big ? "BE " : "LE ") + hex(v) + " @" +
             std::to_string(o);
    }
  }
}

// .npy: rebuilds the header dict {'descr': ..., 'fortran_order': ..., 'shape': (...), } with one
// field changed, dropped or added, or the version or length field changed.
std::string mutate_npy(std::string& b, Rng& r) {
  const size_t hs = b.size() >= 10 && b[6] == 1 ? 10 : 0;
  const size_t hl = hs ? uint8_t(b[8]) | uint8_t(b[9]) << 8 : 0;
  if (b.compare(0, 6, "\x93NUMPY") != 0 || hs == 0 || hs + hl > b.size()) return mutate_bytes(b, r);
  const std::string dict = b.substr(hs, hl), data = b.substr(hs + hl);
  auto between = [&](const std::string& key, char close) {
    const size_t i = dict.find(key);
    if (i == std::string::npos) return std::string();
    const size_t s = i + key.size();
    return dict.substr(s, dict.find(close, s) - s);
  };
  std::vector<std::string> f = {"'descr': '" + between("'descr': '", '\'') + "'",
                                "'fortran_order': " + between("'fortran_order': ", ','),
                                "'shape': (" + between("'shape': (", ')') + ")"};
  static const auto descrs = split("<f8;<f4;>f4;>f8;<f2;<i4;<i8;|u1;|b1;<c8;|O;<U4;|V8;;<f;<f16");
  static const auto shapes = split(
      ";32,;0, 2;-1, 2;8, 2;17, 2;2, 16;16, 2, 1;1, 16, 2;4294967297, 2;4611686018427387904, 2;"
      "9223372036854775807, 9223372036854775807;3037000500, 3037000500;16, 3;16;1e2, 2;16, 2,,");
  std::string what, version = "\x01";
  int len_op = -1;
  const uint64_t op = below(r, 7), k = below(r, 3);
  if (op == 0) f[0] = "'descr': '" + pick(r, descrs) + "'", what = f[0];
  if (op == 1) f[1] = "'fortran_order': True", what = f[1];
  if (op == 2) f[2] = "'shape': (" + pick(r, shapes) + ")", what = f[2];
  if (op == 3) what = "drop " + f[k], f.erase(f.begin() + k);
  if (op == 4) f.push_back("'extra': 1"), what = "add 'extra': 1";
  if (op == 5)
    version = char(pick(r, {2, 3, 0, 255})), what = "version " + hex(uint8_t(version[0]));
  if (op == 6) len_op = int(k), what = "header length field";
  std::string text = "{";
  for (const auto& s : f) text += s + ", ";
  text += "}";
  const bool wide = version[0] == 2 || version[0] == 3;
  const size_t prefix = wide ? 12 : 10;
  text += std::string(63 - (prefix + text.size()) % 64, ' ') + "\n";
  uint64_t len = text.size();
  if (len_op >= 0) {
    const uint64_t lens[] = {0, len - 1, wide ? 0xffffffffu : 0xffffu};
    len = lens[len_op];
    what += " := " + std::to_string(len) + " (actual " + std::to_string(text.size()) + ")";
  }
  std::string head = "\x93NUMPY" + version + '\0';
  for (size_t i = 0; i < (wide ? 4u : 2u); ++i) head += char(len >> (8 * i));
  b = head + text + data;
  return "npy header: " + what;
}

// JSON: one value replaced (raw text, so out-of-range numbers and deep nesting reach the parser
// unchanged), a field or element deleted or duplicated, or an unknown field added.
std::string mutate_json(std::string& text, Rng& r) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || below(r, 4) == 0) return mutate_bytes(text, r);
  std::vector<json::json_pointer> ptrs;
  std::function<void(const json&, const json::json_pointer&)> walk = [&](const json& v,
                                                                         const auto& p) {
    if (!p.empty()) ptrs.push_back(p);
    if (v.is_object())
      for (const auto& it : v.items()) walk(it.value(), p / it.key());
    if (v.is_array())
      for (size_t i = 0; i < v.size(); ++i) walk(v[i], p / i);
  };
  walk(j, json::json_pointer());
  if (ptrs.empty()) return mutate_bytes(text, r);
  static const auto raw = split(
      "4294967297;-2147483649;2147483648;9223372036854775807;18446744073709551615;"
      "-9223372036854775809;1e308;-1e308;1e400;1e-400;-1;0;-0;0.5;1.5;3;\"x\";\"\";null;true;[];{};"
      "[0];[[]];\"1\";\"euler,heun\";\"gmm:/nonexistent.json\";\"torchscript:\";\"gmm64\";"
      "\"fmnist\";\"stats:/nonexistent.npz\";\"npy:\"");
  const json::json_pointer p = ptrs[below(r, ptrs.size())];
  std::string what = "json " + p.to_string(), insert;
  switch (below(r, 6)) {
    case 0:
    case 1:
      insert = pick(r, raw), what += " := " + insert;
      break;
    case 2: {
      json& parent = j[p.parent_pointer()];
      if (parent.is_object())
        parent.erase(p.back());
      else
        parent.erase(std::stoul(p.back()));
      return text = j.dump(), what + ": deleted";
    }
    case 3: {
      json& parent = j[p.parent_pointer()];
      (parent.is_object() ? parent : j)["fuzz_unknown"] = 1;
      return text = j.dump(), what + ": unknown field added next to it";
    }
    case 4: {
      const size_t depth = pick(r, {64, 5000, 100000});
      insert = std::string(depth, '[') + std::string(depth, ']');
      what += " := " + std::to_string(depth) + " nested arrays";
      break;
    }
    default:
      if (j[p].is_array() && !j[p].empty()) {
        j[p].push_back(j[p][0]);
        return text = j.dump(), what + ": first element duplicated";
      }
      insert = "\"" + std::string(100000, 'a') + "\"", what += " := a 100000-character string";
  }
  j[p] = "@@FUZZ@@";
  text = j.dump();
  text.replace(text.find("\"@@FUZZ@@\""), 10, insert);
  return what;
}

// Zip archives (.npz, TorchScript): rewritten as a valid archive with stored members, one of
// them cut short, changed, emptied, renamed or dropped.
using Members = std::vector<std::pair<std::string, std::string>>;
Members unzip(const std::string& b) {
  Members m;
  zip_error_t ze;
  zip_error_init(&ze);
  zip_source_t* src = zip_source_buffer_create(b.data(), b.size(), 0, &ze);
  zip_t* za = src != nullptr ? zip_open_from_source(src, ZIP_RDONLY, &ze) : nullptr;
  if (za == nullptr && src != nullptr) zip_source_free(src);
  for (zip_int64_t i = 0, n = za ? zip_get_num_entries(za, 0) : 0; i < n; ++i) {
    zip_stat_t st;
    zip_file_t* f = zip_stat_index(za, i, 0, &st) == 0 ? zip_fopen_index(za, i, 0) : nullptr;
    if (f == nullptr) continue;
    std::string data(st.size, '\0');
    zip_fread(f, data.data(), st.size);
    zip_fclose(f);
    m.emplace_back(st.name, data);
  }
  if (za != nullptr) zip_discard(za);
  zip_error_fini(&ze);
  return m;
}

std::string mutate_zip(std::string& b, Rng& r, const fs::path& tmp, bool npy_members) {
  Members m = unzip(b);
  if (m.empty() || below(r, 2) == 0) return mutate_bytes(b, r);
  const size_t v = below(r, m.size());
  auto& [name, data] = m[v];
  std::string what = "zip member '" + name + "' (" + std::to_string(data.size()) + " bytes): ";
  const bool npy = npy_members && name.size() > 4 && name.substr(name.size() - 4) == ".npy";
  const uint64_t op = below(r, npy ? 6 : 5), cut = below(r, data.size());
  if (op == 0) data.resize(cut), what += "cut to " + std::to_string(cut) + " bytes";
  if (op == 1 || op == 2) what += mutate_bytes(data, r);
  if (op == 3) data.clear(), what += "emptied";
  if (op == 4 && cut % 2 == 0) name += ".bak", what += "renamed to " + name;
  if (op == 4 && cut % 2 == 1) m.erase(m.begin() + v), what += "dropped";
  if (op == 5) what += mutate_npy(data, r);
  int err = 0;
  zip_t* za = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  if (za == nullptr) throw std::runtime_error("cannot write " + tmp.string());
  for (const auto& [n, d] : m) {
    zip_source_t* s = zip_source_buffer(za, d.data(), d.size(), 0);
    const zip_int64_t i = zip_file_add(za, n.c_str(), s, ZIP_FL_ENC_UTF_8);
    if (i < 0)
      zip_source_free(s);
    else
      zip_set_file_compression(za, static_cast<zip_uint64_t>(i), ZIP_CM_STORE, 0);
  }
  zip_close(za);  // an archive left without members is removed: the mutant is an empty file
  b = fs::exists(tmp) ? read_file(tmp) : std::string();
  fs::remove(tmp);
  return what;
}

// ---------------------------------------------------------------------------------------------
// Loaders: seeds, the mutator and the command that reads an input.

struct Seed {
  std::string tag, ext, bytes, raw;  // raw: the uncompressed content (IDX)
  fs::path path;
};
struct Command {
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env = {};
};
const char* const kLoaders[] = {"npy", "npz", "mixture", "spec", "idx", "torchscript"};

Seed file_seed(const fs::path& dir, const std::string& tag, const std::string& ext,
               const std::string& text = "") {
  Seed s{tag, ext, "", "", dir / (tag + "." + ext)};
  if (!text.empty()) write_file(s.path, text);
  s.bytes = read_file(s.path);
  return s;
}

// The valid inputs of a loader, written to `dir`.
std::vector<Seed> make_seeds(const std::string& loader, const fs::path& dir) {
  if (loader == "npy") {
    const at::Tensor x = at::linspace(-2, 2, 32, at::kDouble).reshape({16, 2});
    sdekit::write_npy((dir / "f32.npy").string(), x.to(at::kFloat));
    sdekit::write_npy((dir / "f64.npy").string(), x);
    return {file_seed(dir, "f32", "npy"), file_seed(dir, "f64", "npy")};
  }
  if (loader == "npz") {
    sdekit::GaussianStats st;
    st.add(at::sin(at::arange(24, at::kDouble) * 1.7).reshape({8, 3}));
    sdekit::write_stats_npz((dir / "stats.npz").string(), st);
    return {file_seed(dir, "stats", "npz")};
  }
  if (loader == "mixture")
    return {file_seed(dir, "cov", "json", R"({"weights": [0.3, 0.7], "means": [[0, 0], [2, 1]],
 "covariances": [[[1, 0.2], [0.2, 0.5]], [[0.3, 0], [0, 0.3]]]})"),
            file_seed(dir, "stds", "json",
                      R"({"weights": [0.3, 0.7], "means": [[0, 0], [2, 1]], "stds": [0.5, 1]})")};
  if (loader == "spec")  // the tag is the command
    return {file_seed(dir, "converge", "json", R"({"model": "ring2d", "sde": "vp-linear",
 "samplers": ["euler", "heun"], "nfe": [2, 4], "tolerances": [1e-3], "n": 4, "seed": 0,
 "dtype": "float64", "t_end": -1, "grid": "uniform-lambda", "ref_tol": 1e-6, "sde_ref_steps": 8})"),
            file_seed(dir, "fid-table", "json", R"({"model": "ring2d", "sde": "vp-linear",
 "samplers": ["ddim"], "nfe": [2], "n": 50, "seed": 0, "dtype": "float32", "features": "data",
 "reference": "mixture", "n_ref": 100, "kid_subsets": 2, "kid_subset_size": 20, "guidance": 0})")};
  if (loader == "idx") {  // 64 Fashion-MNIST-shaped images and their labels, gzipped
    Seed img{"images", "gz", "", be32(0x803) + be32(64) + be32(28) + be32(28),
             dir / "train-images-idx3-ubyte.gz"};
    Seed lab{"labels", "gz", "", be32(0x801) + be32(64), dir / "train-labels-idx1-ubyte.gz"};
    for (int i = 0; i < 64 * 784; ++i) img.raw += char(i * 7 + i / 784);
    for (int i = 0; i < 64; ++i) lab.raw += char(i % 10);
    img.bytes = gzip(img.raw, img.path), lab.bytes = gzip(lab.raw, lab.path);
    return {img, lab};
  }
  fs::copy_file(SDEKIT_TEST_DATA "/torchscript/eps_mlp_cond.pt", dir / "cond.pt");
  fs::copy_file(SDEKIT_TEST_DATA "/torchscript/eps_mlp.pt", dir / "uncond.pt");
  return {file_seed(dir, "cond", "pt"), file_seed(dir, "uncond", "pt")};
}

// IDX: the gzip bytes, or a header field or the content of the raw file, gzipped again (or, one
// time in six, stored uncompressed).
std::string mutate_idx(const Seed& s, std::string& b, Rng& r, const fs::path& tmp) {
  const uint64_t k = below(r, 3);
  if (k == 0) return "gzip bytes: " + mutate_bytes(b, r);
  std::string raw = s.raw, what;
  if (k == 1) {
    static const uint32_t values[] = {0,     1,     2,          27,         29,         63,
                                      65,    60000, 0x7fffffff, 0x80000000, 0xffffffff, 0x803,
                                      0x801, 0x808, 0x901,      0x800};
    const size_t field = below(r, s.tag == "images" ? 4 : 2);
    const uint32_t v = pick(r, values);
    raw.replace(4 * field, 4, be32(v));
    what = "header field " + std::to_string(field) + " := " + hex(v);
  } else {
    what = "content: " + mutate_bytes(raw, r);
  }
  if (below(r, 6) == 0) return b = raw, what + ", stored uncompressed";
  b = gzip(raw, tmp);
  fs::remove(tmp);
  return what + ", gzipped";
}

std::string mutate(const std::string& loader, const Seed& s, std::string& b, Rng& r,
                   const fs::path& tmp) {
  if (loader == "npy") return below(r, 2) ? mutate_npy(b, r) : mutate_bytes(b, r);
  if (loader == "npz" || loader == "torchscript") return mutate_zip(b, r, tmp, loader == "npz");
  if (loader == "idx") return mutate_idx(s, b, r, tmp);
  return mutate_json(b, r);
}

// Writes input `b` (derived from seed `s`) and whatever else the command needs under `run`;
// returns the command that reads it.
Command command(const std::string& loader, const std::vector<Seed>& seeds, const Seed& s,
                const std::string& b, const fs::path& run) {
  const std::string in = (run / ("input." + s.tag + "." + s.ext)).string();
  if (loader != "idx") write_file(in, b);
  if (loader == "npy")
    return {{"sample", "--model", "ring2d", "--sampler", "euler", "--steps", "2", "--x-init", in,
             "--out", (run / "out.npy").string()}};
  if (loader == "npz") return {{"fd", in, seeds[0].path.string()}};
  if (loader == "mixture")
    return {{"sample", "--model", "gmm:" + in, "--sampler", "euler", "--steps", "2", "--n", "16"}};
  if (loader == "spec")
    return {{s.tag, "--spec", in, "--out", (run / "out").string(), "--fresh", "--quiet"}};
  if (loader == "torchscript")
    return {{"sample", "--model", "torchscript:" + in, "--param", "eps", "--event-shape", "2",
             "--sampler", "euler", "--steps", "2", "--n", "8"}};
  // idx: the mutant takes its seed's place next to the other, valid, file (under the name
  // without ".gz" when it lacks the gzip signature); train reads the pair.
  const fs::path data = run / "data";
  fs::create_directories(data);
  for (const Seed& o : seeds) {
    const std::string leaf = o.path.filename().string();
    const bool gz = o.tag != s.tag || b.compare(0, 2, "\x1f\x8b") == 0;
    write_file(data / (gz ? leaf : leaf.substr(0, leaf.size() - 3)), o.tag == s.tag ? b : o.bytes);
  }
  return {{"train", "--data", "fashion-mnist", "--steps", "1", "--batch", "4", "--width", "8",
           "--depth", "1", "--channel-mult", "1", "--out", (run / "out").string(), "--quiet"},
          {{"SDEKIT_FASHION_MNIST_DIR", data.string()}}};
}

// ---------------------------------------------------------------------------------------------
// Running inputs in child processes

struct Job {
  long index = 0;
  const Seed* seed = nullptr;
  std::string what, bytes;
  fs::path run;
};
struct Outcome {
  Job job;
  std::string cls, msg;
  double seconds = 0;
};

[[noreturn]] void child(const Command& c, const fs::path& run, long mem_mb) {
  setpgid(0, 0);  // one process group, so a timeout kill also takes anything it started
  const int console = open((run / "console.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int null = open("/dev/null", O_RDONLY);
  dup2(null, 0), dup2(console, 1), dup2(console, 2);
  const rlimit none{0, 0}, mem{rlim_t(mem_mb) << 20, rlim_t(mem_mb) << 20};
  setrlimit(RLIMIT_CORE, &none);
  if (mem_mb > 0) setrlimit(RLIMIT_AS, &mem);
  for (const auto& [k, v] : c.env) setenv(k.c_str(), v.c_str(), 1);
  int rc = 0;
  {
    std::ofstream out(run / "stdout.txt"), err(run / "stderr.txt");
    std::vector<const char*> argv = {"sdekit"};
    for (const auto& a : c.argv) argv.push_back(a.c_str());
    try {
      rc = sdekit::run_cli(int(argv.size()), argv.data(), out, err);
    } catch (const std::exception& e) {
      err << "exception escaped run_cli: " << e.what() << "\n", rc = kEscaped;
    } catch (...) {
      err << "exception escaped run_cli (not a std::exception)\n", rc = kEscaped;
    }
  }
  std::fflush(nullptr);
  _exit(rc);
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (l.find_first_not_of(" \t\r") != std::string::npos) out.push_back(l);
  return out;
}

std::string classify(int status, bool killed, const fs::path& run, std::string& msg) {
  const auto err = lines(read_file(run / "stderr.txt")),
             con = lines(read_file(run / "console.txt"));
  for (const auto& l : con)  // sanitizer reports count as crashes whatever the exit status
    if (l.find("ERROR: AddressSanitizer") != std::string::npos ||
        l.find(": runtime error: ") != std::string::npos)
      return msg = l, "crash";
  if (WIFSIGNALED(status)) {
    if (killed) return msg = "timeout", "hang";
    const int sig = WTERMSIG(status);
    msg = "signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
    if (!con.empty()) msg += "; last output: " + con.back();
    return "crash";
  }
  const int rc = WEXITSTATUS(status);
  msg = err.empty() ? "(no message)" : err.front();
  if (rc == 0) return "ok";
  if (rc == 1) return "failure";
  if (rc == 2 && err.size() == 1 && err[0].rfind("error:", 0) == 0) return "rejected";
  msg = "exit " + std::to_string(rc) + ", " + std::to_string(err.size()) + " line(s): " + msg;
  return "contract";
}

// Runs jobs 0..total-1 (made on demand by `make`), at most o.jobs at a time.
std::vector<Outcome> run_jobs(long total, const std::function<Job(long)>& make,
                              const std::function<Command(const Job&)>& cmd, const Options& o) {
  struct Running {
    pid_t pid;
    Clock::time_point start;
    bool killed;
    Job job;
  };
  std::vector<Outcome> done;
  std::vector<Running> running;
  for (long next = 0; next < total || !running.empty();) {
    while (long(running.size()) < o.jobs && next < total) {
      Job job = make(next++);
      fs::remove_all(job.run);
      fs::create_directories(job.run);
      const Command c = cmd(job);
      std::fflush(nullptr);
      const pid_t pid = fork();
      if (pid < 0) throw std::runtime_error("fork failed");
      if (pid == 0) child(c, job.run, o.mem_mb);
      setpgid(pid, pid);
      running.push_back({pid, Clock::now(), false, std::move(job)});
    }
    for (size_t i = 0; i < running.size();) {
      Running& c = running[i];
      int status = 0;
      const double secs = std::chrono::duration<double>(Clock::now() - c.start).count();
      if (waitpid(c.pid, &status, WNOHANG) == c.pid) {
        Outcome out{std::move(c.job), "", "", secs};
        out.cls = classify(status, c.killed, out.job.run, out.msg);
        done.push_back(std::move(out));
        running.erase(running.begin() + i);
        continue;
      }
      if (!c.killed && secs > o.timeout)
        kill(-c.pid, SIGKILL), kill(c.pid, SIGKILL), c.killed = true;
      ++i;
    }
    usleep(2000);
  }
  return done;
}

// "gmm:/work/x/runs/spec_12/input.cov.json': field 'n'..." -> "gmm:RUN/input.cov.json': ...".
std::string normalized(const std::string& msg, const Job& job) {
  std::string s = msg;
  for (size_t at; (at = s.find(job.run.string())) != std::string::npos;)
    s.replace(at, job.run.string().size(), "RUN");
  if (s.size() > 400) s = s.substr(0, 400) + "...";
  return std::regex_replace(s, std::regex("[0-9]+"), "N");
}

std::string clip(const std::string& s, size_t n = 300) {
  return s.size() > n ? s.substr(0, n) + "..." : s;
}

// Prints the table row and the offending inputs of one loader; returns whether it failed.
bool report(const std::string& name, const std::vector<Outcome>& res, const Options& o,
            double secs) {
  std::map<std::string, std::vector<const Outcome*>> by;
  for (const auto& r : res) by[r.cls].push_back(&r);
  std::cout << std::left << std::setw(12) << name << std::right << std::setw(6) << res.size();
  for (const char* c : kClasses) std::cout << std::setw(10) << by[c].size();
  std::cout << std::setw(9) << std::fixed << std::setprecision(1) << secs << "\n";
  for (const char* c : kClasses) {
    if (by[c].empty() || std::string(c) == "ok") continue;
    std::map<std::string, std::pair<long, const Outcome*>> kinds;  // normalized message
    for (const Outcome* r : by[c]) {
      auto& k = kinds[normalized(r->msg, r->job)];
      if (k.first++ == 0) k.second = r;
    }
    std::cout << "    " << c << ": " << by[c].size() << " input(s), " << kinds.size()
              << " kind(s) of message\n";
    size_t shown = 0;
    for (const auto& [_, k] : kinds) {
      if (++shown > (std::string(c) == "rejected" ? 3u : 12u)) break;
      const Outcome& r = *k.second;
      std::cout << "      x" << k.first << "  #" << r.job.index << " " << r.job.seed->tag << " ["
                << clip(r.job.what, 160) << "]: " << clip(r.msg) << "\n";
    }
  }
  const Outcome* longest = nullptr;  // a one-line message can still be unreadably long
  long long_ones = 0;
  for (const Outcome* r : by["rejected"])
    if (r->msg.size() > 1000 && ++long_ones && (!longest || r->msg.size() > longest->msg.size()))
      longest = r;
  if (longest)
    std::cout << "    note: " << long_ones << " rejection message(s) over 1000 characters, longest "
              << longest->msg.size() << " (#" << longest->job.index << " " << longest->job.seed->tag
              << " [" << clip(longest->job.what, 160) << "])\n";
  const bool bad = !by["crash"].empty() || !by["hang"].empty() || !by["contract"].empty() ||
                   (o.strict && !by["failure"].empty());
  return bad;
}

long parse_long(const std::string& s) {
  size_t used = 0;
  const long v = std::stol(s, &used);
  if (used != s.size()) throw std::invalid_argument("not an integer: " + s);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  // Single-threaded BLAS and OpenMP before any library starts its threads, so fork() is safe;
  // these are read when the libraries load, so the process re-executes itself once with them.
  if (std::getenv("SDEKIT_FUZZ_CHILD_ENV") == nullptr) {
    setenv("SDEKIT_FUZZ_CHILD_ENV", "1", 1);
    for (const char* v : {"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"})
      setenv(v, "1", 1);
    // Sanitizer builds: a report aborts the child, so it is seen as a crash.
    setenv("ASAN_OPTIONS", "abort_on_error=1:detect_leaks=0", 0);
    setenv("UBSAN_OPTIONS", "halt_on_error=1:abort_on_error=1:print_stacktrace=1", 0);
    execv("/proc/self/exe", argv);  // falls through (environment already set) if this fails
  }
  Options o;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--strict") {
        o.strict = true;
        continue;
      }
      const std::map<std::string, std::function<void(const std::string&)>> set = {
          {"--loader", [&](const std::string& v) { o.loader = v; }},
          {"--count", [&](const std::string& v) { o.count = parse_long(v); }},
          {"--seed", [&](const std::string& v) { o.seed = std::stoull(v); }},
          {"--timeout", [&](const std::string& v) { o.timeout = std::stod(v); }},
          {"--work", [&](const std::string& v) { o.work = v; }},
          {"--corpus", [&](const std::string& v) { o.corpus = v; }},
          {"--replay", [&](const std::string& v) { o.replay = v; }},
          {"--index", [&](const std::string& v) { o.index = parse_long(v); }},
          {"--jobs",
           [&](const std::string& v) { o.jobs = int(std::clamp(parse_long(v), 1L, 2L)); }},
          {"--mem-limit-mb", [&](const std::string& v) { o.mem_mb = parse_long(v); }}};
      const auto f = set.find(a);
      if (f == set.end()) throw std::invalid_argument("unknown option " + a);
      if (i + 1 >= argc) throw std::invalid_argument("missing value for " + a);
      f->second(argv[++i]);
    }
    if (o.work.empty()) throw std::invalid_argument("--work DIR is required");
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what()
              << "\nusage: sdekit_fuzz --loader NAME|all --count N --seed S --timeout SECONDS "
                 "--work DIR [--corpus DIR] [--replay DIR] [--index I] [--strict] [--jobs 1|2] "
                 "[--mem-limit-mb MB (0: none)]\n";
    return 2;
  }
  at::set_num_threads(1);
  const fs::path work = fs::absolute(o.work);
  fs::remove_all(work);
  fs::create_directories(work);
  if (!o.corpus.empty()) fs::create_directories(o.corpus);
  std::ofstream log(work / "results.tsv");
  log << "loader\tindex\tseed\tclass\tseconds\tmutation\tmessage\n";

  std::cout << "loader       total        ok  rejected   failure     crash      hang  contract"
               "  seconds\n";
  bool failed = false, any = false;
  const auto t0 = Clock::now();
  for (const std::string name : kLoaders) {
    if (o.loader != "all" && o.loader != name) continue;
    any = true;
    const auto t1 = Clock::now();
    const fs::path seed_dir = work / "seeds" / name, runs = work / "runs";
    fs::create_directories(seed_dir);
    const std::vector<Seed> seeds = make_seeds(name, seed_dir);
    auto cmd = [&](const Job& j) { return command(name, seeds, *j.seed, j.bytes, j.run); };

    // Every seed must run cleanly; mutants are drawn only from those that do.
    std::vector<const Seed*> good;
    const auto checks = run_jobs(
        long(seeds.size()),
        [&](long k) {
          return Job{-1, &seeds[k], "valid seed", seeds[k].bytes,
                     runs / (name + "_seed_" + seeds[k].tag)};
        },
        cmd, o);
    for (const auto& c : checks) {
      if (c.cls == "ok")
        good.push_back(c.job.seed);
      else
        std::cout << "note: " << name << " seed '" << c.job.seed->tag << "' does not run (" << c.cls
                  << ": " << clip(c.msg) << "); it is not mutated\n";
      fs::remove_all(c.job.run);
      log << name << "\tseed\t" << c.job.seed->tag << "\t" << c.cls << "\t" << c.seconds << "\t\t"
          << c.msg << "\n";
    }
    if (good.empty()) {
      std::cout << std::left << std::setw(12) << name << " no seed runs cleanly\n";
      failed = true;
      continue;
    }

    // Replay files named LOADER_INDEX.TAG.EXT, or mutants of the seeds.
    std::vector<fs::path> replay;
    if (!o.replay.empty())
      for (const auto& e : fs::directory_iterator(o.replay))
        if (e.is_regular_file() && e.path().filename().string().rfind(name + "_", 0) == 0)
          replay.push_back(e.path());
    std::sort(replay.begin(), replay.end());
    const long total = !o.replay.empty() ? long(replay.size()) : o.index >= 0 ? 1 : o.count;
    auto make = [&](long k) {
      Job j;
      if (!o.replay.empty()) {
        const std::string leaf = replay[k].filename().string();
        const size_t dot = leaf.find('.'), dot2 = leaf.find('.', dot + 1);
        const std::string tag = leaf.substr(dot + 1, dot2 - dot - 1);
        j.seed = &seeds[0];
        for (const Seed& s : seeds)
          if (s.tag == tag) j.seed = &s;
        j.index = std::strtol(leaf.c_str() + name.size() + 1, nullptr, 10);
        j.bytes = read_file(replay[k]), j.what = "replay " + leaf;
      } else {
        j.index = o.index >= 0 ? o.index : k;
        std::seed_seq ss{uint32_t(o.seed), uint32_t(o.seed >> 32), uint32_t(j.index), fnv1a(name)};
        Rng r(ss);
        j.seed = good[below(r, good.size())];
        j.bytes = j.seed->bytes;
        j.what = mutate(name, *j.seed, j.bytes, r, work / "tmp.bin");
      }
      j.run = runs / (name + "_" + std::to_string(j.index));
      return j;
    };
    const auto res = run_jobs(total, make, cmd, o);
    for (const auto& r : res) {
      log << name << "\t" << r.job.index << "\t" << r.job.seed->tag << "\t" << r.cls << "\t"
          << r.seconds << "\t" << r.job.what << "\t" << r.msg << "\n";
      const bool keep = r.cls == "crash" || r.cls == "hang" || r.cls == "contract" ||
                        (o.strict && r.cls == "failure");
      if (keep && !o.corpus.empty() && o.replay.empty())
        write_file(fs::path(o.corpus) / (name + "_" + std::to_string(r.job.index) + "." +
                                         r.job.seed->tag + "." + r.job.seed->ext),
                   r.job.bytes);
      if (o.index >= 0) {  // reproducing one input: keep its files, show the command
        std::cout << "#" << r.job.index << " " << r.job.seed->tag << " [" << r.job.what << "] -> "
                  << r.cls << "; files in " << r.job.run.string() << "; sdekit";
        for (const auto& a : cmd(r.job).argv) std::cout << " " << a;
        std::cout << "\n";
      } else {
        fs::remove_all(r.job.run);
      }
    }
    failed |= report(name, res, o, std::chrono::duration<double>(Clock::now() - t1).count());
  }
  if (!any) {
    std::cerr << "error: unknown loader '" << o.loader
              << "'; valid: all, npy, npz, mixture, spec, idx, torchscript\n";
    return 2;
  }
  std::cout << "total " << std::fixed << std::setprecision(1)
            << std::chrono::duration<double>(Clock::now() - t0).count() << " s; every outcome in "
            << (work / "results.tsv").string() << "\n";
  return failed ? 1 : 0;
}
