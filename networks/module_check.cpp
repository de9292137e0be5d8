#include "networks/module_check.hpp"

#include <caffe2/serialize/inline_container.h>
#include <torch/script.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace sdekit {

namespace {

[[noreturn]] void misfit(const std::string& what, const std::string& name, const at::Tensor& t,
                         const std::string& problem) {
  std::ostringstream os;
  os << what << ": tensor '" << name << "' " << t.sizes() << " " << problem
     << " (the file is truncated or corrupt)";
  throw std::invalid_argument(os.str());
}

// The distinct storages found so far (by data pointer) with the bytes each declares.
using Storages = std::map<const void*, std::pair<uint64_t, std::string>>;

// A strided tensor reads the bytes [offset, offset + (1 + sum_i (size_i - 1) stride_i)) of its
// storage, in elements; they must lie inside the storage.
void check_tensor(const at::Tensor& t, const std::string& what, const std::string& name,
                  Storages& storages) {
  if (!t.defined() || t.is_meta()) return;
  if (t.has_storage() && t.storage().data() != nullptr)
    storages.emplace(t.storage().data(), std::make_pair(uint64_t(t.storage().nbytes()), name));
  if (t.layout() != at::kStrided) misfit(what, name, t, "is not a dense (strided) tensor");
  if (t.numel() == 0) return;
  if (!t.has_storage()) misfit(what, name, t, "has no storage");
  if (t.storage().data() == nullptr) misfit(what, name, t, "has no data in the file");
  int64_t last = t.storage_offset();
  if (last < 0) misfit(what, name, t, "has a negative storage offset");
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.stride(d) < 0) misfit(what, name, t, "has a negative stride");
    last += (t.size(d) - 1) * t.stride(d);
  }
  const uint64_t need = (static_cast<uint64_t>(last) + 1) * t.element_size();
  const uint64_t have = t.storage().nbytes();
  if (need > have)
    misfit(what, name, t,
           "needs " + std::to_string(need) + " bytes but its storage in the file holds " +
               std::to_string(have));
}

void check_value(const c10::IValue& v, const std::string& what, const std::string& name,
                 Storages& storages) {
  if (v.isTensor()) {
    check_tensor(v.toTensor(), what, name, storages);
  } else if (v.isTensorList()) {
    const auto list = v.toTensorList();
    for (size_t i = 0; i < list.size(); ++i)
      check_tensor(list.get(i), what, name + "[" + std::to_string(i) + "]", storages);
  } else if (v.isList()) {
    const auto list = v.toListRef();
    for (size_t i = 0; i < list.size(); ++i)
      check_value(list[i], what, name + "[" + std::to_string(i) + "]", storages);
  } else if (v.isTuple()) {
    const auto& elems = v.toTupleRef().elements();
    for (size_t i = 0; i < elems.size(); ++i)
      check_value(elems[i], what, name + "[" + std::to_string(i) + "]", storages);
  } else if (v.isGenericDict()) {
    for (const auto& kv : v.toGenericDict()) check_value(kv.value(), what, name + "{}", storages);
  }
}

void check_block(const torch::jit::Block* b, const std::string& what, const std::string& method,
                 Storages& storages) {
  for (const torch::jit::Node* n : b->nodes()) {
    if (n->kind() == c10::prim::Constant && n->outputs().size() == 1) {
      if (const auto v = torch::jit::toIValue(n->output()))
        check_value(*v, what, "constant in " + method, storages);
    }
    for (const torch::jit::Block* sub : n->blocks()) check_block(sub, what, method, storages);
  }
}

// The sizes of the file's tensor records (".../data/K" and ".../constants/K"), each read once.
// The loader gives every storage the size its pickle declares but only the record's bytes, so
// each storage found in the module must be matched by a record of exactly its size.
void match_records(const std::string& path, const std::string& what, const Storages& storages) {
  std::vector<uint64_t> records;
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    for (const std::string& name : reader.getAllRecords()) {
      const bool data = name.rfind("data/", 0) == 0 || name.rfind("constants/", 0) == 0;
      if (!data || name.size() < 4 || name.compare(name.size() - 4, 4, ".pkl") == 0) continue;
      records.push_back(std::get<1>(reader.getRecord(name)));
    }
  } catch (const c10::Error& e) {
    throw std::invalid_argument(what + ": cannot read the archive '" + path + "' (" +
                                brief_error(e) + ")");
  }
  std::multiset<uint64_t> left(records.begin(), records.end());
  std::vector<std::pair<uint64_t, std::string>> wanted;
  for (const auto& s : storages) wanted.push_back(s.second);
  std::sort(wanted.begin(), wanted.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& [bytes, name] : wanted) {
    if (bytes == 0) continue;
    const auto it = left.find(bytes);
    if (it == left.end())
      throw std::invalid_argument(what + ": tensor '" + name + "' declares " +
                                  std::to_string(bytes) +
                                  " bytes of data, but no record of the file holds them (the file "
                                  "is truncated or corrupt)");
    left.erase(it);
  }
}

}  // namespace

void check_module_tensors(const torch::jit::Module& module, const std::string& path,
                          const std::string& what) {
  Storages storages;
  for (const auto& a : module.named_attributes(/*recurse=*/true))
    check_value(a.value, what, a.name, storages);
  for (const auto& sub : module.named_modules())
    for (const auto& m : sub.value.get_methods())
      check_block(m.graph()->block(), what,
                  (sub.name.empty() ? std::string() : sub.name + ".") + m.name(), storages);
  match_records(path, what, storages);
}

std::string brief_error(const std::exception& e) {
  std::string m = e.what();
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) m = c->what_without_backtrace();
  std::vector<std::string> lines;
  std::istringstream in(m);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
    if (!line.empty()) lines.push_back(line);
  }
  if (lines.empty()) return m;
  if (lines.size() > 1 && lines.front().find("TorchScript interpreter") != std::string::npos)
    return lines.back();
  return lines.front();
}

void check_archive_file(const std::string& path, const std::string& what) {
  torch::jit::Module m;
  try {
    m = torch::jit::load(path, at::Device(at::kCPU));
  } catch (const c10::Error& e) {
    throw std::invalid_argument(what + ": cannot read '" + path + "' (" + brief_error(e) +
                                "; the file is truncated or corrupt)");
  } catch (const std::exception& e) {
    throw std::invalid_argument(what + ": cannot read '" + path + "' (" + e.what() + ")");
  }
  check_module_tensors(m, path, what);
}

}  // namespace sdekit
