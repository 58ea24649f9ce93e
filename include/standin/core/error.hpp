#pragma once
// Errors are values. Each carries the exit code the CLI maps it to and a one-line message
// a user can act on ("what went wrong, with which file, and what to do").
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace standin {

// Documented in README ("Exit codes"); keep the two in sync.
enum class ExitCode : int {
  ok = 0,
  usage = 2,       // bad command line
  bad_input = 3,   // unreadable / invalid media, masks, poses, jobs
  model = 4,       // bundle missing, corrupt or not matching its contract
  runtime = 5,     // anything failing mid-run (out of memory, I/O errors on output, ...)
  interrupted = 130,
};

struct Error {
  ExitCode code = ExitCode::runtime;
  std::string message;

  static Error usage(std::string m) { return {ExitCode::usage, std::move(m)}; }
  static Error bad_input(std::string m) { return {ExitCode::bad_input, std::move(m)}; }
  static Error model(std::string m) { return {ExitCode::model, std::move(m)}; }
  static Error runtime(std::string m) { return {ExitCode::runtime, std::move(m)}; }

  // Prefix with context while keeping the exit code: err.with_context("reading ref.png").
  Error with_context(const std::string& context) const { return {code, context + ": " + message}; }
};

// Result<T>: a value or an Error. Small on purpose (C++17 has no std::expected).
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error) : state_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

  const Error& error() const { return std::get<Error>(state_); }

 private:
  std::variant<T, Error> state_;
};

// Status: success or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  static Status success() { return {}; }

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *error_; }

 private:
  std::optional<Error> error_;
};

}  // namespace standin

// Propagate an error from an expression returning Status or Result<T>.
#define STANDIN_TRY(expr)                              \
  do {                                                 \
    auto&& standin_try_result_ = (expr);               \
    if (!standin_try_result_.ok()) return standin_try_result_.error(); \
  } while (0)

#define STANDIN_CONCAT_INNER_(a, b) a##b
#define STANDIN_CONCAT_(a, b) STANDIN_CONCAT_INNER_(a, b)
// STANDIN_ASSIGN_OR_RETURN(auto reader, VideoReader::open(path));
#define STANDIN_ASSIGN_OR_RETURN(lhs, expr)                                   \
  auto STANDIN_CONCAT_(standin_result_, __LINE__) = (expr);                   \
  if (!STANDIN_CONCAT_(standin_result_, __LINE__).ok())                       \
    return STANDIN_CONCAT_(standin_result_, __LINE__).error();                \
  lhs = std::move(STANDIN_CONCAT_(standin_result_, __LINE__)).value()
