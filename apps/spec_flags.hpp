#pragma once
// The command-line flags of a study's spec, generated from its schema (experiments/
// spec_schema.hpp): one flag per field, --name with '-' for '_', typed by the field's member or
// read as text by the field's parser; the flags given override a spec file.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "experiments/spec_schema.hpp"

namespace sdekit::cli {

template <class Spec>
class SpecFlags {
 public:
  /// Adds one flag per field of `schema` to `cmd`.
  void add_to(CLI::App* cmd, const SpecSchema<Spec>& schema) {
    for (const auto& f : schema) {
      std::string flag = "--" + f.name;
      std::replace(flag.begin(), flag.end(), '_', '-');
      // -n as well: torchrun's parser takes a later "--n" for an abbreviation of its own flags.
      if (f.name == "n") flag = "-n," + flag;
      CLI::Option* o = nullptr;
      if (f.from_text) {
        o = cmd->add_option(flag, texts_[f.name], f.meaning);
      } else {
        o = std::visit([&](auto m) { return cmd->add_option(flag, values_.*m, f.meaning); },
                       f.member);
      }
      std::visit(
          [&](auto m) {
            const auto& v = values_.*m;
            if constexpr (std::is_arithmetic_v<std::decay_t<decltype(v)>>) {
              if (f.show_default) o->default_str(text_of(v));
            } else if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::string>) {
              if (f.show_default && !v.empty()) o->default_str(v);
            } else {
              if (!f.from_text) o->delimiter(',');
              if (f.show_default && !v.empty()) o->default_str(joined(v));
            }
          },
          f.member);
      bound_.emplace_back(&f, o);
    }
  }

  /// Overrides `spec` with every flag given on the command line (then runs the field's
  /// after_flag check).
  void apply(Spec& spec) const {
    for (const auto& [f, o] : bound_) {
      if (o->count() == 0) continue;
      if (f->from_text)
        f->from_text(spec, texts_.at(f->name));
      else
        std::visit([&](auto m) { spec.*m = values_.*m; }, f->member);
      if (f->after_flag) f->after_flag(spec);
    }
  }

 private:
  template <class T>
  static std::string text_of(const T& v) {
    std::ostringstream os;
    os << v;
    return os.str();
  }
  template <class T>
  static std::string joined(const std::vector<T>& v) {
    std::string out;
    for (const auto& e : v) out += (out.empty() ? "" : ",") + text_of(e);
    return out;
  }

  Spec values_;                               // the flags' targets, holding the defaults
  std::map<std::string, std::string> texts_;  // flags read as text (node addresses are stable)
  std::vector<std::pair<const SpecField<Spec>*, CLI::Option*>> bound_;
};

}  // namespace sdekit::cli
