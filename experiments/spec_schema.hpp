#pragma once
// A study's spec fields, each declared once: its name (the JSON key of spec files and spec.json;
// the flag is --name with '-' for '_'), where it lives in the spec struct (which gives its type
// and default), and its meaning (the flag's help). JSON reading and writing (experiments/), the
// command-line flags and their override of a spec file (apps/) are generated from this list;
// the cross-field checks stay in the study's validate().
#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

namespace sdekit {

template <class Spec>
struct SpecField {
  using Member = std::variant<std::string Spec::*, int Spec::*, int64_t Spec::*, uint64_t Spec::*,
                              double Spec::*, std::vector<int> Spec::*, std::vector<double> Spec::*,
                              std::vector<std::string> Spec::*>;
  std::string name;
  Member member;
  std::string meaning;
  /// Written to spec.json only when non-empty and not the default, so folders made before the
  /// field existed still resume.
  bool written_when_set = false;
  /// Whether the flag's help shows the default (off where the default is a sentinel, e.g.
  /// t_end = -1 for "the SDE's").
  bool show_default = true;
  /// A flag read as text by this parser instead of by type (lists with their own checks).
  std::function<void(Spec&, const std::string&)> from_text = {};
  /// Runs on the spec after the flag has overridden it (checks that only a flag needs).
  std::function<void(const Spec&)> after_flag = {};
};

template <class Spec>
using SpecSchema = std::vector<SpecField<Spec>>;

/// "5,10,20" as numbers; an empty list or an item that is not a number throws
/// std::invalid_argument naming `option`.
std::vector<double> parse_number_list(const std::string& text, const std::string& option);
/// An NFE list ("5,10,20"): integers in [1, 1e7]; errors name --nfe.
std::vector<int> parse_nfe_list(const std::string& text);

}  // namespace sdekit
