// Error values for expected failures (see docs/ARCHITECTURE.md, "Error policy").
//
// Status is a code plus a human message. Result<T> is either a T or a non-OK Status.
// Exceptions are reserved for a dead request or a programming error; anything a user
// can cause (bad input, a conflict, a missing object, an unreachable service) is
// returned as a Status and checked by the caller.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace culvert {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // malformed input (HTTP 400 / exit 2)
  kUnprocessable,     // well-formed but invalid content (HTTP 422)
  kNotFound,          // HTTP 404
  kConflict,          // state conflict, stale version, duplicate (HTTP 409)
  kUnauthenticated,   // HTTP 401
  kPermissionDenied,  // HTTP 403
  kTooLarge,          // HTTP 413
  kUnavailable,       // a dependency (database, endpoint) could not be reached
  kTimeout,
  kCancelled,
  kInternal,
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  bool is_ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "NotFound: flow 'etl' does not exist"
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status unprocessable(std::string m) { return {StatusCode::kUnprocessable, std::move(m)}; }
inline Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status conflict(std::string m) { return {StatusCode::kConflict, std::move(m)}; }
inline Status unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status internal_error(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// Either a value or an error Status. REQUIRES: an error Status passed in is not OK.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).is_ok());
  }

  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &std::get<T>(v_); }
  const T* operator->() const { return &std::get<T>(v_); }
  T& operator*() & { return std::get<T>(v_); }
  const T& operator*() const& { return std::get<T>(v_); }

  // The error; OK when a value is held.
  Status status() const { return is_ok() ? Status() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace culvert
