#include "standin/core/json_bounded.hpp"

namespace standin {

using nlohmann::json;

void JsonBuilder::reset() {
  root_ = json();
  stack_.clear();
  pending_key_.clear();
  values_ = 0;
  started_ = false;
  limit_error_.clear();
}

json* JsonBuilder::insert(json value) {
  if (++values_ > limits_.max_values) {
    limit_error_ = "more than " + std::to_string(limits_.max_values) + " values";
    return nullptr;
  }
  if (stack_.empty()) {
    if (started_) {
      limit_error_ = "more than one top-level value";
      return nullptr;
    }
    started_ = true;
    root_ = std::move(value);
    return &root_;
  }
  json& parent = *stack_.back();
  if (parent.is_array()) {
    parent.push_back(std::move(value));
    return &parent.back();
  }
  json& slot = parent[pending_key_];  // a repeated key keeps the last value, as nlohmann does
  slot = std::move(value);
  return &slot;
}

bool JsonBuilder::scalar(json value) { return insert(std::move(value)) != nullptr; }

bool JsonBuilder::start(json empty_container) {
  if (static_cast<int>(stack_.size()) >= limits_.max_depth) {
    limit_error_ = "nested deeper than " + std::to_string(limits_.max_depth) + " levels";
    return false;
  }
  json* container = insert(std::move(empty_container));
  if (!container) return false;
  stack_.push_back(container);
  return true;
}

bool JsonBuilder::key(std::string name) {
  pending_key_ = std::move(name);
  return true;
}

bool JsonBuilder::end() {
  if (!stack_.empty()) stack_.pop_back();
  return true;
}

std::string describe_json_error(std::size_t position, const nlohmann::detail::exception& e) {
  std::string what = e.what();
  // "[json.exception.parse_error.101] parse error at line 1, column 2: syntax error ..." -> the tail
  if (const auto colon = what.find(": "); colon != std::string::npos && what.rfind("[json.exception", 0) == 0)
    what = what.substr(colon + 2);
  if (e.id == 406) what = "a number is too large";
  return "not valid JSON at byte " + std::to_string(position) + " (" + what + ")";
}

bool JsonBuilderSax::parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) {
  syntax_error = describe_json_error(position, e);
  return false;
}

Result<json> parse_json_bounded(std::string_view text, const std::string& name, const JsonLimits& limits, ExitCode code) {
  JsonBuilder builder(limits);
  JsonBuilderSax sax(builder);
  bool ok = false;
  try {
    ok = json::sax_parse(text.begin(), text.end(), &sax);
  } catch (const json::exception& e) {  // defensive: the SAX interface reports errors as calls
    return Error{code, name + ": " + describe_json_error(0, e)};
  }
  if (!sax.syntax_error.empty()) return Error{code, name + ": " + sax.syntax_error};
  if (!builder.limit_error().empty()) return Error{code, name + ": too complex for this kind of file (" + builder.limit_error() + ")"};
  if (!ok || !builder.complete()) return Error{code, name + ": not valid JSON"};
  return std::move(builder.result());
}

}  // namespace standin
