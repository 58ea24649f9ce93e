#pragma once
// JSON parsing with limits. nlohmann's DOM parser allocates whatever the text describes: 64 MB
// of '[' become gigabytes of nested empty arrays. These helpers build the same nlohmann::json
// values from SAX events but stop at a nesting depth and a value count, so the memory a parsed
// text can take stays a small multiple of its size.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "standin/core/error.hpp"

namespace standin {

struct JsonLimits {
  int max_depth = 64;             // containers open at once
  int64_t max_values = 1 << 20;   // values of any kind (containers included)
};

// Builds one value from SAX-style calls. Each call returns false once a limit is exceeded;
// limit_error() then says which ("nested deeper than 64 levels").
class JsonBuilder {
 public:
  explicit JsonBuilder(JsonLimits limits = {}) : limits_(limits) {}

  bool scalar(nlohmann::json value);
  bool start(nlohmann::json empty_container);  // json::object() or json::array()
  bool key(std::string name);
  bool end();

  int depth() const { return static_cast<int>(stack_.size()); }
  int64_t values() const { return values_; }
  bool complete() const { return started_ && stack_.empty(); }
  nlohmann::json& result() { return root_; }
  const std::string& limit_error() const { return limit_error_; }
  void reset();  // ready for the next value, same limits

 private:
  nlohmann::json* insert(nlohmann::json value);

  JsonLimits limits_;
  nlohmann::json root_;
  std::vector<nlohmann::json*> stack_;
  std::string pending_key_;
  int64_t values_ = 0;
  bool started_ = false;
  std::string limit_error_;
};

// nlohmann SAX handler that feeds a JsonBuilder (the plain, whole-text case).
class JsonBuilderSax {
 public:
  using json = nlohmann::json;
  explicit JsonBuilderSax(JsonBuilder& builder) : builder_(builder) {}
  bool null() { return builder_.scalar(nullptr); }
  bool boolean(bool v) { return builder_.scalar(v); }
  bool number_integer(json::number_integer_t v) { return builder_.scalar(v); }
  bool number_unsigned(json::number_unsigned_t v) { return builder_.scalar(v); }
  bool number_float(json::number_float_t v, const json::string_t&) { return builder_.scalar(v); }
  bool string(json::string_t& v) { return builder_.scalar(std::move(v)); }
  bool binary(json::binary_t&) { return builder_.scalar(nullptr); }
  bool start_object(std::size_t) { return builder_.start(json::object()); }
  bool key(json::string_t& v) { return builder_.key(std::move(v)); }
  bool end_object() { return builder_.end(); }
  bool start_array(std::size_t) { return builder_.start(json::array()); }
  bool end_array() { return builder_.end(); }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e);

  // Set when the text is not JSON: a one-line description with the byte offset.
  std::string syntax_error;

 private:
  JsonBuilder& builder_;
};

// "not valid JSON at byte 17 (syntax error while parsing value - invalid literal)".
std::string describe_json_error(std::size_t position, const nlohmann::detail::exception& e);

// Parses `text` within `limits`. Errors carry `code` and start with "<name>: ".
Result<nlohmann::json> parse_json_bounded(std::string_view text, const std::string& name, const JsonLimits& limits,
                                          ExitCode code);

}  // namespace standin
