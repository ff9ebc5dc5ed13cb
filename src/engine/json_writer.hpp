// A minimal JSON text builder for the documents the engine prints (describe, the run
// summary). Keeps nlohmann/json out of the engine's hot paths and headers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/json_text.hpp"

namespace culvert::detail {

// Builds a JSON document; the caller is responsible for well-formed nesting.
class JsonWriter {
 public:
  JsonWriter& begin_object() { sep(); out_ += '{'; first_ = true; return *this; }
  JsonWriter& end_object() { out_ += '}'; first_ = false; return *this; }
  JsonWriter& begin_array() { sep(); out_ += '['; first_ = true; return *this; }
  JsonWriter& end_array() { out_ += ']'; first_ = false; return *this; }
  JsonWriter& key(std::string_view k) {
    sep();
    append_json_string(out_, k);
    out_ += ':';
    first_ = true;  // the value follows without a comma
    return *this;
  }
  JsonWriter& str(std::string_view v) { sep(); append_json_string(out_, v); return *this; }
  JsonWriter& num(int64_t v) { sep(); out_ += std::to_string(v); return *this; }
  JsonWriter& num_double(double v);
  JsonWriter& boolean(bool v) { sep(); out_ += v ? "true" : "false"; return *this; }
  JsonWriter& null() { sep(); out_ += "null"; return *this; }
  // Already-encoded JSON text.
  JsonWriter& raw(std::string_view json) { sep(); out_ += json; return *this; }
  // A string, or null when empty.
  JsonWriter& str_or_null(std::string_view v) { return v.empty() ? null() : str(v); }
  std::string take() { return std::move(out_); }
  const std::string& text() const { return out_; }

 private:
  void sep() {
    if (!first_) out_ += ',';
    first_ = false;
  }
  std::string out_;
  bool first_ = true;
};

}  // namespace culvert::detail
