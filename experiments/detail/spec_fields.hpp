#pragma once
// Reading a study's spec from JSON text: each field is bound to a variable with its expected
// type, keys may use '-' or '_', and every error names the source, the field, what was expected
// and what was found; unknown fields are refused with the list of valid ones. Private to
// experiments/.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "experiments/spec_schema.hpp"

namespace sdekit::detail {

/// A short rendering of a JSON value for error messages, as nlohmann::json::dump writes it when
/// it is small: at most `max_chars` characters and a few levels deep (a full dump of hostile input
/// can be megabytes long, or nested deeply enough to overflow the stack).
inline std::string json_preview(const nlohmann::json& v, std::size_t max_chars = 80,
                                int depth = 3) {
  std::string out;
  if (v.is_array() || v.is_object()) {
    const bool arr = v.is_array();
    out = arr ? "[" : "{";
    std::size_t i = 0;
    for (auto it = v.begin(); it != v.end() && out.size() < max_chars; ++it, ++i) {
      if (i) out += ",";
      if (!arr) out += "\"" + it.key().substr(0, 20) + "\":";
      out += depth > 0 ? json_preview(*it, max_chars, depth - 1) : std::string("...");
    }
    if (out.size() >= max_chars || i < v.size()) out += ",...";
    out += arr ? "]" : "}";
  } else {
    out = v.dump();
  }
  if (out.size() > max_chars) out = out.substr(0, max_chars) + "...";
  return out;
}

class SpecFields {
 public:
  SpecFields(const std::string& text, std::string source) : source_(std::move(source)) {
    try {
      json_ = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {  // parse errors, and number overflow
      throw std::invalid_argument(source_ + ": not valid JSON (" + e.what() + ")");
    }
    if (!json_.is_object())
      throw std::invalid_argument(source_ +
                                  ": expected a JSON object with the spec's fields, got " +
                                  std::string(json_.type_name()));
  }

  SpecFields& string(const std::string& name, std::string& out) {
    return bind(name, [&out, this, name](const nlohmann::json& v) {
      if (!v.is_string()) throw bad(name, v, "a string");
      out = v.get<std::string>();
    });
  }
  template <class Int>
  SpecFields& integer(const std::string& name, Int& out) {
    return bind(name, [&out, this, name](const nlohmann::json& v) {
      if (std::is_unsigned_v<Int> ? !v.is_number_unsigned() : !v.is_number_integer())
        throw bad(name, v, std::is_unsigned_v<Int> ? "a non-negative integer" : "an integer");
      out = fitted<Int>(name, v);
    });
  }
  SpecFields& number(const std::string& name, double& out) {
    return bind(name, [&out, this, name](const nlohmann::json& v) {
      if (!v.is_number()) throw bad(name, v, "a number");
      out = v.get<double>();
    });
  }
  SpecFields& int_list(const std::string& name, std::vector<int>& out) {
    return bind(name, [&out, this, name](const nlohmann::json& v) {
      const char* expected = "an array of positive integers";
      if (!v.is_array()) throw bad(name, v, expected);
      out.clear();
      for (const auto& e : v) {
        if (!e.is_number_integer()) throw bad(name, v, expected);
        out.push_back(fitted<int>(name, e));
      }
    });
  }
  SpecFields& number_list(const std::string& name, std::vector<double>& out) {
    return bind(name, [&out, this, name](const nlohmann::json& v) {
      if (!v.is_array()) throw bad(name, v, "an array of numbers");
      out.clear();
      for (const auto& e : v) {
        if (!e.is_number()) throw bad(name, v, "an array of numbers");
        out.push_back(e.get<double>());
      }
    });
  }
  /// An array of names, or one comma-separated string.
  SpecFields& names(const std::string& name, std::vector<std::string>& out) {
    return bind(name, [&out, this, name](const nlohmann::json& v) {
      out.clear();
      if (v.is_string()) {
        std::stringstream ss(v.get<std::string>());
        for (std::string s; std::getline(ss, s, ',');)
          if (!s.empty()) out.push_back(s);
        return;
      }
      if (!v.is_array()) throw bad(name, v, "an array of names");
      for (const auto& e : v) {
        if (!e.is_string()) throw bad(name, v, "an array of names");
        out.push_back(e.get<std::string>());
      }
    });
  }

  /// Assigns every field present in the text; unknown fields are refused.
  void apply() const {
    for (auto it = json_.begin(); it != json_.end(); ++it) {
      std::string key = it.key();
      std::replace(key.begin(), key.end(), '-', '_');
      const auto f = setters_.find(key);
      if (f == setters_.end()) {
        std::string valid;
        for (const auto& n : order_) valid += (valid.empty() ? "" : ", ") + n;
        throw std::invalid_argument(source_ + ": unknown field '" + it.key() +
                                    "'; valid: " + valid);
      }
      f->second(it.value());
    }
  }

  const std::string& source() const { return source_; }

 private:
  SpecFields& bind(const std::string& name, std::function<void(const nlohmann::json&)> set) {
    setters_[name] = std::move(set);
    order_.push_back(name);
    return *this;
  }
  // The integer v as an Int, read through 64 bits; a value outside Int's range is refused
  // (never wrapped).
  template <class Int>
  Int fitted(const std::string& name, const nlohmann::json& v) const {
    using Lim = std::numeric_limits<Int>;
    bool fits = false;
    Int out{};
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      fits = u <= static_cast<uint64_t>(Lim::max());
      out = static_cast<Int>(u);
    } else if (v.is_number_integer()) {
      const int64_t i = v.get<int64_t>();
      if constexpr (std::is_unsigned_v<Int>)
        fits = i >= 0 && static_cast<uint64_t>(i) <= static_cast<uint64_t>(Lim::max());
      else
        fits = i >= static_cast<int64_t>(Lim::min()) && i <= static_cast<int64_t>(Lim::max());
      out = static_cast<Int>(i);
    }
    if (!fits)
      throw std::invalid_argument(source_ + ": field '" + name + "': " + json_preview(v) +
                                  " is out of range (expected an integer in [" +
                                  std::to_string(Lim::min()) + ", " + std::to_string(Lim::max()) +
                                  "])");
    return out;
  }
  std::invalid_argument bad(const std::string& name, const nlohmann::json& v,
                            const std::string& expected) const {
    return std::invalid_argument(source_ + ": field '" + name + "': expected " + expected +
                                 ", got " + json_preview(v));
  }

  std::string source_;
  nlohmann::json json_;
  std::map<std::string, std::function<void(const nlohmann::json&)>> setters_;
  std::vector<std::string> order_;
};

inline void bind_field(SpecFields& f, const std::string& name, std::string& v) {
  f.string(name, v);
}
inline void bind_field(SpecFields& f, const std::string& name, double& v) {
  f.number(name, v);
}
inline void bind_field(SpecFields& f, const std::string& name, std::vector<int>& v) {
  f.int_list(name, v);
}
inline void bind_field(SpecFields& f, const std::string& name, std::vector<double>& v) {
  f.number_list(name, v);
}
inline void bind_field(SpecFields& f, const std::string& name, std::vector<std::string>& v) {
  f.names(name, v);
}
template <class Int, class = std::enable_if_t<std::is_integral_v<Int>>>
void bind_field(SpecFields& f, const std::string& name, Int& v) {
  f.integer(name, v);
}

/// Reads the fields of `schema` present in the JSON text into `spec` (the others keep their
/// values); errors as SpecFields gives them.
template <class Spec>
void read_spec(const SpecSchema<Spec>& schema, const std::string& text, const std::string& source,
               Spec& spec) {
  SpecFields f(text, source);
  for (const auto& field : schema)
    std::visit([&](auto m) { bind_field(f, field.name, spec.*m); }, field.member);
  f.apply();
}

/// Every field of `schema` as a JSON object (fields marked written_when_set only when they are
/// non-empty and differ from the default).
template <class Spec>
nlohmann::json write_spec(const SpecSchema<Spec>& schema, const Spec& spec) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& field : schema)
    std::visit(
        [&](auto m) {
          const auto& v = spec.*m;
          if constexpr (!std::is_arithmetic_v<std::decay_t<decltype(v)>>) {
            if (field.written_when_set && (v.empty() || v == Spec{}.*m)) return;
          } else {
            if (field.written_when_set && v == Spec{}.*m) return;
          }
          j[field.name] = v;
        },
        field.member);
  return j;
}

/// A spec read from JSON text with read_spec and checked by the study's validate(spec); errors of
/// either are prefixed with `source`.
template <class Spec>
Spec spec_from_json(const SpecSchema<Spec>& schema, const std::string& text,
                    const std::string& source) {
  Spec spec;
  read_spec(schema, text, source, spec);
  try {
    validate(spec);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(source + ": " + e.what());
  }
  return spec;
}

/// Runs f(); an std::invalid_argument it throws is prefixed with "field 'NAME': ".
template <class F>
auto with_field(const std::string& name, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("field '" + name + "': " + e.what());
  }
}

}  // namespace sdekit::detail
